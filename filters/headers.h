// A mutable list of header fields for filters: starts as views of the parsed head (no
// copy), and keeps the text of anything a filter adds in its own storage. Names compare
// case-insensitively. Reused across requests, so it does not allocate once warm.
#pragma once

#include <deque>
#include <string>
#include <string_view>
#include <vector>

#include "gateway/http/message.h"

namespace sluice {

class HeaderList {
 public:
  void clear();
  void assign(const http::Header* headers, size_t count);  // views; caller keeps them alive
  // Copies every value into own storage (when the source is about to go away).
  void own();

  const http::Header* data() const { return fields_.data(); }
  size_t size() const { return fields_.size(); }
  const http::Header& operator[](size_t i) const { return fields_[i]; }
  auto begin() const { return fields_.begin(); }
  auto end() const { return fields_.end(); }

  // First value of `name`, or null.
  const std::string_view* get(std::string_view name) const;
  bool has(std::string_view name) const { return get(name) != nullptr; }
  void add(std::string_view name, std::string_view value);  // copies both
  void set(std::string_view name, std::string_view value);  // replaces all of `name`
  size_t remove(std::string_view name);                     // how many were removed

 private:
  std::string_view store(std::string_view text);
  std::vector<http::Header> fields_;
  std::deque<std::string> storage_;  // deque: stored strings never move
  size_t used_ = 0;                  // strings of storage_ in use (the rest are spare)
};

}  // namespace sluice
