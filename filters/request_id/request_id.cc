// request_id: every request carries an id that the client, the upstream and every log
// line share. A valid incoming id is kept (so a caller's trace continues); otherwise a
// new random UUID is made. Never trusts an id that could inject into logs or headers.
#include <cstdint>
#include <cstring>
#include <string>

#include "config/yaml_reader.h"
#include "filters/exchange.h"
#include "filters/filter.h"
#include "filters/uuid.h"

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
    newUuid(id);
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
