// Crash-safe small files: written whole, with their permissions, replacing the old content,
// leaving no temporary file behind.
#include <catch2/catch.hpp>

#include <sys/stat.h>

#include <fstream>
#include <sstream>

#include "storage/atomic_file.hpp"
#include "store_fixture.hpp"

using namespace petrel;

TEST_CASE("atomic files: written whole with their mode, replaced, no temporary left") {
  testing::temp_dir dir;
  auto path = (dir.path / "sub" / "admin.token").string();
  write_file_atomically(path, "first\n", 0600);
  write_file_atomically(path, "second\n", 0600);
  std::ifstream in(path);
  std::stringstream content;
  content << in.rdbuf();
  CHECK(content.str() == "second\n");
  struct stat st {};
  REQUIRE(::stat(path.c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0600);
  std::size_t files = 0;
  for (const auto& entry : std::filesystem::directory_iterator(dir.path / "sub")) {
    (void)entry;
    ++files;
  }
  CHECK(files == 1);
  CHECK_THROWS_WITH(write_file_atomically("/proc/petrel-cannot/x", "y"),
                    Catch::Contains("/proc/petrel-cannot"));
}
