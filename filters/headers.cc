#include "filters/headers.h"

namespace sluice {

void HeaderList::clear() {
  fields_.clear();
  used_ = 0;
}

void HeaderList::assign(const http::Header* headers, size_t count) {
  clear();
  fields_.assign(headers, headers + count);
}

std::string_view HeaderList::store(std::string_view text) {
  if (used_ == storage_.size()) storage_.emplace_back();
  std::string& s = storage_[used_++];
  s.assign(text.data(), text.size());
  return s;
}

void HeaderList::own() {
  for (http::Header& h : fields_) {
    h.name = store(h.name);
    h.value = store(h.value);
  }
}

const std::string_view* HeaderList::get(std::string_view name) const {
  for (const http::Header& h : fields_) {
    if (h.name.size() == name.size() && http::iequals(h.name, name)) return &h.value;
  }
  return nullptr;
}

void HeaderList::add(std::string_view name, std::string_view value) {
  std::string_view n = store(name);
  fields_.push_back(http::Header{n, store(value)});
}

void HeaderList::set(std::string_view name, std::string_view value) {
  remove(name);
  add(name, value);
}

size_t HeaderList::remove(std::string_view name) {
  size_t before = fields_.size();
  std::erase_if(fields_, [name](const http::Header& h) {
    return h.name.size() == name.size() && http::iequals(h.name, name);
  });
  return before - fields_.size();
}

}  // namespace sluice
