#include "gateway/http/message.h"

#include <array>

namespace sluice::http {
namespace {

constexpr std::array<uint8_t, 256> kLower = [] {
  std::array<uint8_t, 256> t{};
  for (int i = 0; i < 256; ++i) t[i] = (i >= 'A' && i <= 'Z') ? i + ('a' - 'A') : i;
  return t;
}();

template <typename Head>
const Header* findIn(const Head& head, std::string_view name) {
  for (uint16_t i = 0; i < head.header_count; ++i) {
    if (iequals(head.headers[i].name, name)) return &head.headers[i];
  }
  return nullptr;
}

}  // namespace

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (kLower[static_cast<uint8_t>(a[i])] != kLower[static_cast<uint8_t>(b[i])]) return false;
  }
  return true;
}

const Header* RequestHead::find(std::string_view name) const { return findIn(*this, name); }
const Header* ResponseHead::find(std::string_view name) const { return findIn(*this, name); }

}  // namespace sluice::http
