// request_id: every request carries an id that the client, the upstream and every log
// line share. A valid incoming id is kept (so a caller's trace continues); otherwise a
// new random UUID is made. Never trusts an id that could inject into logs or headers.
#include <sys/random.h>

#include <cstdint>
#include <cstring>
#include <string>

#include "config/yaml_reader.h"
#include "filters/exchange.h"
#include "filters/filter.h"

namespace sluice {
namespace {

using config::detail::Field;
using config::detail::Fields;
using config::detail::Schema;

constexpr size_t kMaxIdLength = 200;

// Ids travel into headers and JSON logs: allow only characters that need no escaping.
bool validId(std::string_view id) {
  if (id.empty() || id.size() > kMaxIdLength) return false;
  for (char c : id) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_' || c == '.' || c == ':' || c == '+' || c == '/' || c == '=';
    if (!ok) return false;
  }
  return true;
}

struct HexPairs {
  char pairs[256][2];
  constexpr HexPairs() : pairs() {
    constexpr char kHex[] = "0123456789abcdef";
    for (int i = 0; i < 256; ++i) {
      pairs[i][0] = kHex[i >> 4];
      pairs[i][1] = kHex[i & 0xF];
    }
  }
  const char* operator[](size_t i) const { return pairs[i]; }
};
constexpr HexPairs kHexPairs;

// xoshiro-style generator per thread, seeded from the kernel: ids must be unique, not
// secret, and making one must not cost a system call per request.
class IdGenerator {
 public:
  IdGenerator() {
    if (getrandom(state_, sizeof state_, 0) != sizeof state_) {
      state_[0] = reinterpret_cast<uintptr_t>(this) ^ 0x9E3779B97F4A7C15ull;
      state_[1] = 0xD1B54A32D192ED03ull;
    }
    if ((state_[0] | state_[1]) == 0) state_[1] = 1;
  }
  uint64_t next() {
    // xorshift128+
    uint64_t s1 = state_[0];
    const uint64_t s0 = state_[1];
    state_[0] = s0;
    s1 ^= s1 << 23;
    state_[1] = s1 ^ s0 ^ (s1 >> 17) ^ (s0 >> 26);
    return state_[1] + s0;
  }
  // RFC 9562 version 4 UUID text. Two hex digits per table lookup: this runs for every
  // request, and a digit-by-digit loop cost more than the rest of the filter.
  void uuid(std::string& out) {
    uint64_t hi = next(), lo = next();
    hi = (hi & ~0xF000ull) | 0x4000ull;
    lo = (lo & ~(3ull << 62)) | (2ull << 62);
    char buf[36];
    char* p = buf;
    auto put = [&p](uint64_t word, int bytes) {
      for (int i = bytes - 1; i >= 0; --i) {
        std::memcpy(p, kHexPairs[(word >> (8 * i)) & 0xFF], 2);
        p += 2;
      }
    };
    put(hi >> 32, 4);
    *p++ = '-';
    put(hi >> 16, 2);
    *p++ = '-';
    put(hi, 2);
    *p++ = '-';
    put(lo >> 48, 2);
    *p++ = '-';
    put(lo, 6);
    out.assign(buf, 36);
  }

 private:
  uint64_t state_[2];
};

thread_local IdGenerator t_ids;

class RequestIdFilter final : public Filter, public FilterFactory {
 public:
  explicit RequestIdFilter(std::string header) : header_(std::move(header)) {}

  Filter* create(Exchange&) const override { return const_cast<RequestIdFilter*>(this); }

  FilterStatus onRequest(Exchange& x) override {
    std::string& id = x.context().request_id;
    const std::string_view* incoming = x.requestHeaders().get(header_);
    if (incoming && validId(*incoming)) {
      id.assign(*incoming);
      return FilterStatus::kContinue;  // already in the request headers as received
    }
    t_ids.uuid(id);
    x.requestHeaders().set(header_, id);
    return FilterStatus::kContinue;
  }

  FilterStatus onResponse(Exchange& x) override {
    if (!x.context().request_id.empty()) x.responseHeaders().set(header_, x.context().request_id);
    return FilterStatus::kContinue;
  }

 private:
  std::string header_;
};

std::shared_ptr<const FilterFactory> parse(FilterParseContext& ctx) {
  static const Schema kSchema{{"header"}};
  Fields fields;
  if (!ctx.reader.map(ctx.field, kSchema, fields)) return nullptr;
  std::string header = "x-request-id";
  if (const Field* f = fields.get("header")) {
    std::optional<std::string> value = ctx.reader.string(*f);
    if (!value) return nullptr;
    if (!config::detail::isToken(*value)) {
      ctx.reader.error(*f, "expected a header name");
      return nullptr;
    }
    header = *value;
  }
  return std::make_shared<RequestIdFilter>(header);
}

}  // namespace

SLUICE_REGISTER_FILTER("request_id", parse);

}  // namespace sluice
