// access_log: one JSON line per request, written when the request ends (success, local
// reply, upstream failure or client gone). The line is built in a per-thread buffer and
// handed to a LogWriter (log_writer.h), so a worker never waits on the output.
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <climits>
#include <cstring>
#include <memory>
#include <string>

#include "config/yaml_reader.h"
#include "filters/access_log/json_line.h"
#include "filters/access_log/log_writer.h"
#include "filters/exchange.h"
#include "filters/filter.h"

namespace sluice {
namespace {

using config::detail::Field;
using config::detail::Fields;
using config::detail::Schema;

constexpr uint64_t kDefaultBuffer = 8ull * 1024 * 1024;
constexpr uint64_t kMinBuffer = 4 * 1024;
constexpr std::string_view kDroppedType = "# TYPE sluice_access_log_dropped_total ";
// Everything of a line but its escaped strings: keys, quotes, numbers, the timestamp.
constexpr size_t kFixedSize = 512;

// The line is built here: grown to the worst case of the request at hand (rarely; it
// is kept), then written without bounds checks.
struct LineBuffer {
  std::unique_ptr<char[]> data;
  size_t capacity = 0;
  char* reserve(size_t n) {
    if (n > capacity) {
      capacity = std::max<size_t>(n, 4096);
      data = std::make_unique_for_overwrite<char[]>(capacity);
    }
    return data.get();
  }
};
thread_local LineBuffer t_line;

template <size_t N>
char* put(char* out, const char (&text)[N]) {
  std::memcpy(out, text, N - 1);
  return out + N - 1;
}

// A JSON string, or null when empty.
char* putString(char* out, std::string_view text, bool null_if_empty) {
  if (null_if_empty && text.empty()) return put(out, "null");
  *out++ = '"';
  out = access_log::writeJsonChars(out, text);
  *out++ = '"';
  return out;
}

// The query with the value of parameter `secret` replaced by "***" (an API key must not
// reach the log). Never longer than the query itself plus 3 bytes per parameter.
char* writeRedactedQuery(char* p, std::string_view query, std::string_view secret) {
  bool first = true;
  while (true) {
    size_t amp = query.find('&');
    std::string_view pair = query.substr(0, amp);
    if (!first) *p++ = '&';
    first = false;
    size_t eq = pair.find('=');
    if (pair.substr(0, eq) == secret && eq != std::string_view::npos) {
      p = access_log::writeJsonChars(p, pair.substr(0, eq + 1));
      p = put(p, "***");
    } else {
      p = access_log::writeJsonChars(p, pair);
    }
    if (amp == std::string_view::npos) break;
    query.remove_prefix(amp + 1);
  }
  return p;
}

class AccessLogFilter final : public Filter, public FilterFactory {
 public:
  AccessLogFilter(std::shared_ptr<access_log::LogWriter> writer, size_t buffer)
      : writer_(std::move(writer)), buffer_(buffer) {}

  Filter* create(Exchange&) const override { return const_cast<AccessLogFilter*>(this); }

  void onDone(const Exchange& x) override {
    using namespace access_log;
    const http::RequestHead& head = x.request();
    const http::Header* ua_header = head.find("user-agent");
    const std::string_view ua = ua_header ? ua_header->value : std::string_view();
    const RequestContext& ctx = x.context();
    const size_t variable = ctx.request_id.size() + x.routeName().size() + head.method.size() +
                            head.path.size() + head.query.size() + x.clientAddress().size() +
                            ua.size() + ctx.api_key_name.size();
    char* const start = t_line.reserve(kFixedSize + kMaxEscapedPerByte * variable);
    char* p = start;
    p = put(p, "{\"time\":\"");
    p = writeTimestamp(p, x.startMicros());
    p = put(p, "\",\"request_id\":");
    p = putString(p, ctx.request_id, true);
    p = put(p, ",\"route\":");
    p = putString(p, x.routeName(), true);
    p = put(p, ",\"method\":");
    p = putString(p, head.method, false);
    p = put(p, ",\"path\":\"");
    p = writeJsonChars(p, head.path);
    if (head.has_query) {
      *p++ = '?';
      p = ctx.secret_query_param.empty()
              ? writeJsonChars(p, head.query)
              : writeRedactedQuery(p, head.query, ctx.secret_query_param);
    }
    p = put(p, "\",\"status\":");
    p = writeUint(p, x.status());
    p = put(p, ",\"bytes_in\":");
    p = writeUint(p, x.bytesIn());
    p = put(p, ",\"bytes_out\":");
    p = writeUint(p, x.bytesOut());
    p = put(p, ",\"duration_ms\":");
    p = writeMillis(p, x.durationMicros());
    p = put(p, ",\"upstream_ms\":");
    if (x.upstreamMicros() < 0) {
      p = put(p, "null");
    } else {
      p = writeMillis(p, static_cast<uint64_t>(x.upstreamMicros()));
    }
    p = put(p, ",\"client\":");
    p = putString(p, x.clientAddress(), false);
    p = put(p, ",\"user_agent\":");
    p = ua_header ? putString(p, ua, false) : put(p, "null");
    p = put(p, ",\"api_key\":");
    p = putString(p, ctx.api_key_name, true);
    p = put(p, "}\n");
    writer_->append(std::string_view(start, static_cast<size_t>(p - start)), buffer_);
  }

  void reopen() const override { writer_->reopen(); }

  // Several access_log filters (global, route overrides, old and new snapshots) may be
  // asked in one scrape; the first emits the samples of every output, the rest see
  // the family already there, so each metric family appears once.
  void appendMetrics(std::string& out) const override {
    if (out.find(kDroppedType) != std::string::npos) return;
    access_log::LogWriter::appendMetrics(out);
  }

 private:
  std::shared_ptr<access_log::LogWriter> writer_;
  size_t buffer_;
};

// An absolute path for `path` (relative to the config file's directory), or an error.
bool resolveOutput(const std::string& path, const std::string& config_dir, std::string& out,
                   std::string& error) {
  if (path == "stdout" || path == "stderr") {
    out = path;
    return true;
  }
  if (path.empty()) {
    error = "expected stdout, stderr or a file path";
    return false;
  }
  if (path.back() == '/') {
    error = "'" + path + "' is a directory; expected a file path";
    return false;
  }
  out = path;
  if (out.front() != '/') {
    std::string base = config_dir.empty() ? "." : config_dir;
    if (base.front() != '/') {
      char cwd[PATH_MAX];
      if (!::getcwd(cwd, sizeof cwd)) {
        error = "cannot resolve the relative path '" + path + "'";
        return false;
      }
      base = base == "." ? std::string(cwd) : std::string(cwd) + "/" + base;
    }
    out = base + "/" + path;
  }
  // Checked now so that a config that cannot log fails to load; the file itself is
  // opened (and created) by the writer thread when the first line arrives.
  struct stat st;
  if (::stat(out.c_str(), &st) == 0) {
    if (S_ISDIR(st.st_mode)) {
      error = "'" + out + "' is a directory; expected a file path";
      return false;
    }
    if (::access(out.c_str(), W_OK) != 0) {
      error = "'" + out + "' is not writable";
      return false;
    }
    return true;
  }
  std::string dir = out.substr(0, out.rfind('/'));
  if (dir.empty()) dir = "/";
  if (::stat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
    error = "directory '" + dir + "' does not exist";
    return false;
  }
  if (::access(dir.c_str(), W_OK | X_OK) != 0) {
    error = "cannot create files in '" + dir + "'";
    return false;
  }
  return true;
}

std::shared_ptr<const FilterFactory> parse(FilterParseContext& ctx) {
  static const Schema kSchema{{"path", "buffer"}};
  Fields fields;
  if (!ctx.reader.map(ctx.field, kSchema, fields)) return nullptr;
  std::string output = "stdout";
  if (const Field* f = fields.get("path")) {
    std::optional<std::string> value = ctx.reader.string(*f);
    if (!value) return nullptr;
    std::string error;
    if (!resolveOutput(*value, ctx.config_dir, output, error)) {
      ctx.reader.error(*f, error);
      return nullptr;
    }
  }
  uint64_t buffer = kDefaultBuffer;
  if (const Field* f = fields.get("buffer")) {
    if (!ctx.reader.size(*f, buffer)) return nullptr;
    if (buffer < kMinBuffer) {
      ctx.reader.error(*f, "buffer must be at least 4KiB");
      return nullptr;
    }
  }
  return std::make_shared<AccessLogFilter>(access_log::LogWriter::forOutput(output), buffer);
}

}  // namespace

SLUICE_REGISTER_FILTER("access_log", parse);

}  // namespace sluice
