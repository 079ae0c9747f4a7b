// body_limit: refuses request bodies over a size with 413 before the backend sees them.
// A declared Content-Length is refused at once; a chunked body is cut off by the codec
// when it crosses the limit. It can only lower a route's own max_body, never raise it.
#include <cstdint>

#include "config/yaml_reader.h"
#include "filters/exchange.h"
#include "filters/filter.h"

namespace sluice {
namespace {

using config::detail::Field;
using config::detail::Fields;
using config::detail::Schema;

class BodyLimitFilter final : public Filter, public FilterFactory {
 public:
  explicit BodyLimitFilter(uint64_t max) : max_(max) {}

  Filter* create(Exchange&) const override { return const_cast<BodyLimitFilter*>(this); }

  FilterStatus onRequest(Exchange& x) override {
    const http::RequestHead& head = x.request();
    if (head.framing == http::Framing::kContentLength && head.content_length > max_) {
      x.reply(413, "Request Entity Too Large");
      return FilterStatus::kStop;
    }
    if (head.framing == http::Framing::kChunked) x.limitRequestBody(max_);
    return FilterStatus::kContinue;
  }

 private:
  uint64_t max_;
};

std::shared_ptr<const FilterFactory> parse(FilterParseContext& ctx) {
  static const Schema kSchema{{"max"}};
  Fields fields;
  if (!ctx.reader.map(ctx.field, kSchema, fields)) return nullptr;
  const Field* f = ctx.reader.required(ctx.field, fields, "max");
  if (!f) return nullptr;
  uint64_t max = 0;
  if (!ctx.reader.size(*f, max)) return nullptr;
  return std::make_shared<BodyLimitFilter>(max);
}

}  // namespace

SLUICE_REGISTER_FILTER("body_limit", parse);

}  // namespace sluice
