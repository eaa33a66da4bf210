// Small files that must survive a crash whole or not at all (secrets, tokens): written to a
// temporary file beside the target, fsynced, renamed over it, then the directory fsynced so
// that the rename itself is durable (rename(2) is atomic; without the directory fsync a power
// cut can still lose the new name).
#pragma once

#include <string>
#include <string_view>
#include <sys/types.h>

namespace petrel {

// Writes content to path atomically with the given permission bits; throws std::runtime_error
// naming the path and the failing step.
void write_file_atomically(const std::string& path, std::string_view content, mode_t mode = 0600);

}  // namespace petrel
