// ip_filter: allows or denies a request by its client address (CIDR allow and deny
// lists, IPv4 and IPv6). The client is the peer, or, when the peer is a trusted proxy,
// the nearest untrusted address in X-Forwarded-For. Never trusts X-Forwarded-For from
// anyone else, and never lets a malformed address through.
#include <string>
#include <string_view>
#include <vector>

#include "config/yaml_reader.h"
#include "filters/exchange.h"
#include "filters/filter.h"
#include "filters/ip_filter/ip_match.h"

namespace sluice {
namespace {

using config::detail::Field;
using config::detail::Fields;
using config::detail::Schema;
using ipmatch::CidrSet;
using ipmatch::Ip128;

constexpr std::string_view kClientIpKey = "client_ip";

bool isOws(char c) { return c == ' ' || c == '\t'; }

std::string_view trimOws(std::string_view s) {
  while (!s.empty() && isOws(s.front())) s.remove_prefix(1);
  while (!s.empty() && isOws(s.back())) s.remove_suffix(1);
  return s;
}

class IpFilter final : public Filter, public FilterFactory {
 public:
  IpFilter(CidrSet allow, CidrSet deny, CidrSet trusted)
      : allow_(std::move(allow)), deny_(std::move(deny)), trusted_(std::move(trusted)) {}

  Filter* create(Exchange&) const override { return const_cast<IpFilter*>(this); }

  FilterStatus onRequest(Exchange& x) override {
    Ip128 client;
    bool forwarded = false;
    if (!resolveClient(x, client, forwarded) || deny_.contains(client) ||
        (!allow_.empty() && !allow_.contains(client))) {
      x.reply(403, "Forbidden");
      return FilterStatus::kStop;
    }
    if (forwarded) {
      // Only when the address came from X-Forwarded-For: later filters (logs, rate
      // limits) otherwise use the peer address, and the common case costs nothing.
      char buf[46];
      size_t n = ipmatch::formatIp(client, buf);
      auto it = x.context().values.find(kClientIpKey);
      if (it == x.context().values.end()) {
        x.context().values.emplace(std::string(kClientIpKey), std::string(buf, n));
      } else {
        it->second.assign(buf, n);
      }
    }
    return FilterStatus::kContinue;
  }

 private:
  // False when no trustworthy address can be found (a malformed X-Forwarded-For entry):
  // such a request is denied, since neither list can vouch for it.
  bool resolveClient(const Exchange& x, Ip128& client, bool& forwarded) const {
    if (!ipmatch::parseIp(x.clientIp(), client)) return false;
    if (trusted_.empty() || !trusted_.contains(client)) return true;
    // Right to left: each trusted hop vouches for the address to its left; the first
    // untrusted one is the client. If every hop is trusted, the leftmost is the client.
    const HeaderList& headers = x.requestHeaders();
    for (size_t i = headers.size(); i-- > 0;) {
      if (!http::iequals(headers[i].name, "x-forwarded-for")) continue;
      std::string_view list = headers[i].value;
      if (trimOws(list).empty()) continue;
      while (true) {
        size_t comma = list.rfind(',');
        std::string_view entry =
            trimOws(comma == std::string_view::npos ? list : list.substr(comma + 1));
        if (!ipmatch::parseIp(entry, client)) return false;
        forwarded = true;
        if (!trusted_.contains(client)) return true;
        if (comma == std::string_view::npos) break;
        list = list.substr(0, comma);
      }
    }
    return true;
  }

  CidrSet allow_;
  CidrSet deny_;
  CidrSet trusted_;
};

bool readCidrs(FilterParseContext& ctx, const Field* field, CidrSet& out) {
  if (!field) return true;
  std::vector<Field> items;
  if (!ctx.reader.list(*field, items)) return false;
  bool ok = true;
  for (const Field& item : items) {
    std::optional<std::string> text = ctx.reader.string(item);
    if (!text) {
      ok = false;
      continue;
    }
    ipmatch::Cidr cidr;
    std::string error;
    if (!ipmatch::parseCidr(*text, cidr, error)) {
      ctx.reader.error(item, error);
      ok = false;
      continue;
    }
    out.add(cidr);
  }
  return ok;
}

std::shared_ptr<const FilterFactory> parse(FilterParseContext& ctx) {
  static const Schema kSchema{{"allow", "deny", "trusted_proxies"}};
  Fields fields;
  if (!ctx.reader.map(ctx.field, kSchema, fields)) return nullptr;
  CidrSet allow, deny, trusted;
  bool ok = readCidrs(ctx, fields.get("allow"), allow);
  ok = readCidrs(ctx, fields.get("deny"), deny) && ok;
  ok = readCidrs(ctx, fields.get("trusted_proxies"), trusted) && ok;
  if (!ok) return nullptr;
  if (!fields.get("allow") && !fields.get("deny")) {
    ctx.reader.error(ctx.field, "ip_filter needs an 'allow' or a 'deny' list (or both)");
    return nullptr;
  }
  if (const Field* f = fields.get("allow"); f && allow.empty()) {
    // An empty allow list would deny everyone: almost certainly not what was meant.
    ctx.reader.error(*f, "'allow' is empty: it would deny every client");
    return nullptr;
  }
  return std::make_shared<IpFilter>(std::move(allow), std::move(deny), std::move(trusted));
}

}  // namespace

SLUICE_REGISTER_FILTER("ip_filter", parse);

}  // namespace sluice
