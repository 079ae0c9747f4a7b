#include "config/admin_config.h"

#include <cstring>

namespace sluice::config::detail {
namespace {

const Schema kAdmin{{"address", "token"}};
constexpr const char* kDefaultAddress = "127.0.0.1:9901";

// What an Authorization header can carry after "Bearer " without quoting.
bool validToken(const std::string& token) {
  for (char c : token) {
    if (c <= ' ' || c > '~') return false;
  }
  return true;
}

}  // namespace

void readAdmin(Reader& reader, const Field& field, const std::vector<Listener>& listeners,
               Admin& out) {
  out.enabled = true;
  out.mark = Reader::markOf(field.key);
  std::string problem;
  resolveAddress(kDefaultAddress, out.address, problem);
  if (field.value.IsNull()) return;
  Fields fields;
  if (!reader.map(field, kAdmin, fields)) return;
  const Field* address = fields.get("address");
  if (address != nullptr && reader.address(*address, /*allow_port_zero=*/false, out.address)) {
    for (const Listener& l : listeners) {
      if (l.address.len == out.address.len &&
          std::memcmp(&l.address.addr, &out.address.addr, out.address.len) == 0) {
        reader.error(*address, "address " + out.address.text + " is already used by listener '" +
                                   l.name + "'");
      }
    }
  }
  if (const Field* f = fields.get("token")) {
    if (std::optional<std::string> token = reader.string(*f)) {
      if (token->empty()) {
        // An unset ${VAR:-} must not switch authentication off without a word.
        reader.error(*f, "the admin token is empty (leave 'token' out for no authentication)");
      } else if (!validToken(*token)) {
        reader.error(*f, "the admin token may contain only visible ASCII characters, no spaces");
      } else {
        out.token = std::move(*token);
      }
    }
  }
}

bool readBool(Reader& reader, const Field& field, bool& out) {
  if (!field.value.IsScalar()) {
    reader.error(field, "expected true or false");
    return false;
  }
  std::optional<std::string> text = reader.string(field);
  if (!text) return false;
  if (*text != "true" && *text != "false") {
    reader.error(field, "expected true or false");
    return false;
  }
  out = *text == "true";
  return true;
}

}  // namespace sluice::config::detail
