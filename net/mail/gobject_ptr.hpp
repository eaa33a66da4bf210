// Ownership of GObjects (GMime's streams, parsers, parts) by std::unique_ptr: released with
// g_object_unref. Internal to net/mail.
#pragma once

#include <glib-object.h>

#include <memory>

namespace petrel {

struct gobject_deleter {
  void operator()(void* p) const {
    if (p) g_object_unref(p);
  }
};

template <class T>
using gptr = std::unique_ptr<T, gobject_deleter>;

}  // namespace petrel
