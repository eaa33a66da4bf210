// A store in a fresh temporary directory, removed afterwards; and record builders.
#pragma once

#include <filesystem>
#include <random>
#include <string>

#include "actors/policy/event_data.hpp"
#include "storage/ids.hpp"
#include "storage/store.hpp"

namespace petrel::testing {

struct temp_dir {
  std::filesystem::path path;
  temp_dir() {
    std::random_device rd;
    path = std::filesystem::temp_directory_path() /
           ("petrel-test-" + std::to_string(rd()) + std::to_string(rd()));
    std::filesystem::create_directories(path);
  }
  ~temp_dir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
};

inline tenant_record make_tenant(const std::string& name) {
  tenant_record t;
  t.id = new_id();
  t.name = name;
  t.created_at_ms = 1000;
  return t;
}

inline message_record make_message(const id128& tenant, std::vector<std::string> addresses) {
  message_record m;
  m.id = new_id();
  m.tenant_id = tenant;
  m.created_at_ms = 2000;
  m.mail_from = "app@example.com";
  m.subject = "s";
  m.tags_json = "[]";
  m.metadata_json = "{}";
  m.message_id_header = "<" + m.id.str() + "@example.com>";
  m.content = "From: app@example.com\r\n\r\nbody\r\n";
  m.size = m.content.size();
  for (const auto& a : addresses) {
    recipient_record r;
    r.id = new_id();
    r.address = a;
    r.domain = a.substr(a.find('@') + 1);
    r.next_attempt_at_ms = 2000;
    r.updated_at_ms = 2000;
    m.recipients.push_back(r);
  }
  return m;
}

// The write a submission makes (with its events), as the store actor makes it.
inline insert_message_op message_op(message_record m) { return event_data::submission(std::move(m)); }

}  // namespace petrel::testing
