#include "gateway/server/http2_session.h"

#include <event2/buffer.h>
#include <event2/event.h>
#include <nghttp2/nghttp2.h>

#include <algorithm>
#include <cstring>

#include "filters/exchange.h"
#include "gateway/http/message.h"
#include "gateway/server/http1_connection.h"
#include "gateway/server/io.h"
#include "gateway/server/log.h"

namespace sluice {
namespace {

// Frames are serialised into the connection's output until it holds this much; the
// rest waits for onWritable().
constexpr size_t kOutputHigh = 256 * 1024;

std::string_view view(const uint8_t* p, size_t n) { return {reinterpret_cast<const char*>(p), n}; }

bool isConnectionSpecific(std::string_view name) {
  using http::iequals;
  return iequals(name, "connection") || iequals(name, "keep-alive") ||
         iequals(name, "proxy-connection") || iequals(name, "transfer-encoding") ||
         iequals(name, "upgrade") || iequals(name, "te") || iequals(name, "trailer");
}

}  // namespace

// One request on an HTTP/2 connection, as the Exchange and the backend see it.
class Http2Stream final : public Downstream, public Deferred {
 public:
  Http2Stream(Http2Session& session, int32_t id)
      : session_(session), id_(id), body_in_(evbuffer_new()), body_out_(evbuffer_new()) {
    config_ = session.conn_.worker_.configPtr();
  }
  ~Http2Stream() override {
    evbuffer_free(body_in_);
    evbuffer_free(body_out_);
  }

  int32_t id() const { return id_; }

  // ---- building the request from the HEADERS block ----
  // False: the header list is too large (the stream is refused).
  bool addHeader(std::string_view name, std::string_view value) {
    // RFC 9113 §6.5.2's measure: name, value and 32 bytes per field.
    header_bytes_ += name.size() + value.size() + 32;
    if (header_bytes_ > session_.conn_.info_->http2.max_header_list_size) return false;
    if (!name.empty() && name[0] == ':') {
      if (name == ":method") method_.assign(value);
      if (name == ":path") target_.assign(value);
      if (name == ":authority") authority_.assign(value);
      return true;
    }
    if (name == "cookie") {
      // HTTP/2 may split cookies into several fields; HTTP/1.1 wants one (RFC 9113
      // §8.2.3).
      if (!cookie_.empty()) cookie_.append("; ");
      cookie_.append(value);
      return true;
    }
    if (fields_.size() + 2 > http::kMaxHeaders) return false;
    fields_.emplace_back(std::string(name), std::string(value));
    return true;
  }

  // All headers are in: make the RequestHead and start the exchange.
  void begin(bool end_stream) {
    if (!cookie_.empty()) fields_.emplace_back("cookie", cookie_);
    if (authority_.empty()) {
      for (const auto& [n, v] : fields_) {
        if (n == "host") authority_ = v;
      }
    }
    head_.method = method_;
    head_.target = target_;
    size_t q = target_.find('?');
    head_.path = std::string_view(target_).substr(0, q);
    head_.has_query = q != std::string::npos;
    head_.query = head_.has_query ? std::string_view(target_).substr(q + 1) : std::string_view();
    head_.version_minor = 1;
    head_.host = authority_;
    head_.keep_alive = true;
    head_.header_count = 0;
    bool has_host = false;
    int64_t content_length = -1;
    for (const auto& [n, v] : fields_) {
      if (n == "host") has_host = true;
      if (n == "content-length") {
        uint64_t len = 0;
        if (!v.empty() && v.size() < 19 &&
            std::all_of(v.begin(), v.end(), [](char c) { return c >= '0' && c <= '9'; })) {
          len = std::stoull(v);
          content_length = static_cast<int64_t>(len);
        }
      }
      head_.headers[head_.header_count++] = {n, v};
    }
    // Backends speak HTTP/1.1, where Host is required: :authority becomes it.
    if (!has_host && !authority_.empty())
      head_.headers[head_.header_count++] = {"host", authority_};
    if (end_stream) {
      head_.framing = http::Framing::kNone;
      has_body_ = false;
      body_complete_ = true;
    } else if (content_length >= 0) {
      head_.framing = http::Framing::kContentLength;
      head_.content_length = static_cast<uint64_t>(content_length);
      has_body_ = content_length > 0;
      body_complete_ = false;
    } else {
      head_.framing = http::Framing::kChunked;
      has_body_ = true;
      body_complete_ = false;
    }
    length_ = content_length;
    started_ = true;
    exchange_.begin(*this, config_, header_bytes_);
  }

  void onData(const uint8_t* data, size_t len) {
    received_ += len;
    if (received_ > max_body_) {
      if (!body_failed_) {
        body_failed_ = true;
        // The exchange learns through bodyFailed(); the client gets 413 if no head
        // went out yet.
        if (!head_sent_) sendLocalReply(413, "Request Entity Too Large");
      }
      nghttp2_session_consume(session_.session_, id_, len);
      return;
    }
    evbuffer_add(body_in_, data, len);
    session_.notifyBody(this);
  }

  void onEndStream() {
    body_complete_ = true;
    session_.notifyBody(this);
  }

  void notifyBody() {
    if (started_ && exchange_.active() && !ended_locally_) exchange_.onRequestBody();
  }
  void notifyWritable() {
    if (started_ && exchange_.active()) exchange_.onResponseWritable();
  }

  // The stream is closed (by both sides, a reset, or the connection going away).
  void closed(bool completed) {
    if (closed_) return;
    closed_ = true;
    if (!body_complete_) body_failed_ = true;
    if (started_) exchange_.end(completed);
  }

  // nghttp2's data source: the response body as the client's window lets it out.
  ssize_t readResponse(uint8_t* buf, size_t length, uint32_t* flags) {
    size_t have = evbuffer_get_length(body_out_);
    size_t n = std::min(have, length);
    if (n > 0) evbuffer_remove(body_out_, buf, n);
    if (evbuffer_get_length(body_out_) == 0) {
      if (response_ended_) {
        *flags |= NGHTTP2_DATA_FLAG_EOF;
      } else if (n == 0) {
        return NGHTTP2_ERR_DEFERRED;
      }
    }
    if (have >= kLowWatermark && have - n < kLowWatermark) session_.notifyWritable(this);
    return static_cast<ssize_t>(n);
  }

  // ---- Downstream ----
  const http::RequestHead& request() const override { return head_; }
  std::string_view path() const override { return head_.path; }
  std::string_view clientIp() const override { return session_.conn_.client_ip_; }
  std::string_view scheme() const override { return session_.conn_.secure() ? "https" : "http"; }
  std::string_view listenerName() const override { return session_.conn_.info_->name; }
  std::string_view tlsClientSubject() const override { return session_.conn_.tlsSubject(); }
  Worker& worker() override { return session_.conn_.worker_; }
  bool hasBody() const override { return has_body_; }
  size_t readBody(evbuffer* out, size_t max) override {
    size_t n = std::min(max, evbuffer_get_length(body_in_));
    if (n == 0) return 0;
    evbuffer_remove_buffer(body_in_, out, n);
    // Only now may the client send more: the window follows the backend's pace.
    nghttp2_session_consume(session_.session_, id_, n);
    session_.sendPending();
    return n;
  }
  bool bodyComplete() const override {
    return body_complete_ && evbuffer_get_length(body_in_) == 0;
  }
  bool bodyFailed() const override { return body_failed_; }
  int64_t bodyLength() const override { return length_; }
  void limitBody(uint64_t max) override { max_body_ = max; }

  void sendHead(const ResponseStart& start) override {
    std::vector<nghttp2_nv> nv;
    std::vector<std::string> names;  // lower-cased copies (HTTP/2 names are lower case)
    names.reserve(start.header_count + 2);
    status_text_ = std::to_string(start.status);
    auto add = [&nv](std::string_view n, std::string_view v) {
      nv.push_back({reinterpret_cast<uint8_t*>(const_cast<char*>(n.data())),
                    reinterpret_cast<uint8_t*>(const_cast<char*>(v.data())), n.size(), v.size(),
                    NGHTTP2_NV_FLAG_NONE});
    };
    add(":status", status_text_);
    bool is_head = head_.method == "HEAD";
    bool keep_length = is_head || start.status == 304;
    for (size_t i = 0; i < start.header_count; ++i) {
      const http::Header& h = start.headers[i];
      if (isConnectionSpecific(h.name)) continue;
      if (http::iequals(h.name, "content-length") && !keep_length) continue;
      std::string& lower = names.emplace_back(http::asciiLower(h.name));
      add(lower, h.value);
    }
    bool has_body = start.has_body && !is_head;
    if (has_body && start.content_length >= 0) {
      length_text_ = std::to_string(start.content_length);
      add("content-length", length_text_);
    }
    head_sent_ = true;
    if (has_body) {
      nghttp2_data_provider provider;
      provider.source.ptr = this;
      provider.read_callback = [](nghttp2_session*, int32_t, uint8_t* buf, size_t length,
                                  uint32_t* flags, nghttp2_data_source* source, void*) -> ssize_t {
        return static_cast<Http2Stream*>(source->ptr)->readResponse(buf, length, flags);
      };
      nghttp2_submit_response(session_.session_, id_, nv.data(), nv.size(), &provider);
    } else {
      no_body_out_ = true;
      nghttp2_submit_response(session_.session_, id_, nv.data(), nv.size(), nullptr);
    }
  }
  void sendBody(evbuffer* data) override {
    if (no_body_out_) {
      evbuffer_drain(data, evbuffer_get_length(data));
      return;
    }
    evbuffer_add_buffer(body_out_, data);
    nghttp2_session_resume_data(session_.session_, id_);
  }
  void sendEnd() override {
    if (response_ended_) return;
    response_ended_ = true;
    ended_locally_ = true;
    if (!no_body_out_) nghttp2_session_resume_data(session_.session_, id_);
    // A request body the backend did not read is not wanted any more: the client may
    // stop sending it (RFC 9113 §8.1).
    if (!body_complete_) {
      nghttp2_submit_rst_stream(session_.session_, NGHTTP2_FLAG_NONE, id_, NGHTTP2_NO_ERROR);
    }
    session_.sendPending();
  }
  void flush() override { session_.sendPending(); }
  void sendLocalReply(uint16_t status, std::string_view message) override {
    if (head_sent_) {
      abort();
      return;
    }
    std::string body = "{\"message\":\"";
    for (char c : message) {
      if (c == '"' || c == '\\') body.push_back('\\');
      body.push_back(c);
    }
    body.append("\"}");
    http::Header headers[] = {{"content-type", "application/json"}};
    ResponseStart start;
    start.status = status;
    start.headers = headers;
    start.header_count = 1;
    start.content_length = static_cast<int64_t>(body.size());
    start.has_body = status != 204 && status != 304 && status >= 200;
    sendHead(start);
    if (start.has_body && head_.method != "HEAD") evbuffer_add(body_out_, body.data(), body.size());
    sendEnd();
  }
  bool headSent() const override { return head_sent_; }
  size_t pendingResponseBytes() const override { return evbuffer_get_length(body_out_); }
  void abort() override {
    nghttp2_submit_rst_stream(session_.session_, NGHTTP2_FLAG_NONE, id_, NGHTTP2_INTERNAL_ERROR);
    session_.sendPending();
  }

 private:
  Http2Session& session_;
  int32_t id_;
  std::shared_ptr<const config::Config> config_;
  std::string method_, target_, authority_, cookie_;
  std::vector<std::pair<std::string, std::string>> fields_;
  size_t header_bytes_ = 0;
  http::RequestHead head_;
  Exchange exchange_;
  evbuffer* body_in_;
  evbuffer* body_out_;
  std::string status_text_, length_text_;
  int64_t length_ = -1;
  uint64_t received_ = 0;
  uint64_t max_body_ = UINT64_MAX;
  bool started_ = false;
  bool has_body_ = false;
  bool body_complete_ = false;
  bool body_failed_ = false;
  bool head_sent_ = false;
  bool no_body_out_ = false;
  bool response_ended_ = false;
  bool ended_locally_ = false;
  bool closed_ = false;
};

// nghttp2's callbacks, with access to the session's internals.
struct Http2Callbacks {
  static Http2Session& self(void* user) { return *static_cast<Http2Session*>(user); }

  static Http2Stream* stream(Http2Session& s, int32_t id) {
    auto it = s.streams_.find(id);
    return it == s.streams_.end() ? nullptr : it->second.get();
  }

  static int onBeginHeaders(nghttp2_session*, const nghttp2_frame* frame, void* user) {
    Http2Session& s = self(user);
    if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST) {
      return 0;
    }
    s.streams_[frame->hd.stream_id] = std::make_unique<Http2Stream>(s, frame->hd.stream_id);
    ++s.open_streams_;
    return 0;
  }

  static int onHeader(nghttp2_session* session, const nghttp2_frame* frame, const uint8_t* name,
                      size_t namelen, const uint8_t* value, size_t valuelen, uint8_t, void* user) {
    Http2Session& s = self(user);
    if (frame->hd.type != NGHTTP2_HEADERS) return 0;
    Http2Stream* st = stream(s, frame->hd.stream_id);
    if (st == nullptr) return 0;  // trailers of a request: ignored
    if (frame->headers.cat != NGHTTP2_HCAT_REQUEST) return 0;
    if (!st->addHeader(view(name, namelen), view(value, valuelen))) {
      nghttp2_submit_rst_stream(session, NGHTTP2_FLAG_NONE, frame->hd.stream_id,
                                NGHTTP2_REFUSED_STREAM);
      return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    }
    return 0;
  }

  static int onFrameRecv(nghttp2_session*, const nghttp2_frame* frame, void* user) {
    Http2Session& s = self(user);
    Http2Stream* st = stream(s, frame->hd.stream_id);
    if (st == nullptr) return 0;
    bool end_stream = (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) != 0;
    if (frame->hd.type == NGHTTP2_HEADERS && frame->headers.cat == NGHTTP2_HCAT_REQUEST) {
      st->begin(end_stream);
    } else if (end_stream &&
               (frame->hd.type == NGHTTP2_DATA || frame->hd.type == NGHTTP2_HEADERS)) {
      st->onEndStream();  // the last DATA, or trailers
    }
    return 0;
  }

  static int onDataChunk(nghttp2_session* session, uint8_t, int32_t id, const uint8_t* data,
                         size_t len, void* user) {
    Http2Session& s = self(user);
    Http2Stream* st = stream(s, id);
    if (st == nullptr) {
      // A stream we no longer track: the window must still move.
      nghttp2_session_consume(session, id, len);
      return 0;
    }
    st->onData(data, len);
    return 0;
  }

  static int onStreamClose(nghttp2_session*, int32_t id, uint32_t error_code, void* user) {
    Http2Session& s = self(user);
    auto it = s.streams_.find(id);
    if (it == s.streams_.end()) return 0;
    std::unique_ptr<Http2Stream> st = std::move(it->second);
    s.streams_.erase(it);
    --s.open_streams_;
    std::erase(s.body_ready_, st.get());
    std::erase(s.writable_, st.get());
    st->closed(error_code == NGHTTP2_NO_ERROR);
    // Its methods may be on the stack (a sendEnd that let nghttp2 close it): deleted
    // on the next loop iteration.
    s.conn_.worker_.deferDelete(std::move(st));
    return 0;
  }

  static ssize_t onSend(nghttp2_session*, const uint8_t* data, size_t len, int, void* user) {
    Http2Session& s = self(user);
    // A client that does not read its responses stops the frames here, not in memory.
    if (evbuffer_get_length(s.conn_.out_) >= kOutputHigh) return NGHTTP2_ERR_WOULDBLOCK;
    evbuffer_add(s.conn_.out_, data, len);
    return static_cast<ssize_t>(len);
  }
};

Http2Session::Http2Session(Http1Connection& conn) : conn_(conn) {
  nghttp2_session_callbacks* cb = nullptr;
  nghttp2_session_callbacks_new(&cb);
  nghttp2_session_callbacks_set_on_begin_headers_callback(cb, &Http2Callbacks::onBeginHeaders);
  nghttp2_session_callbacks_set_on_header_callback(cb, &Http2Callbacks::onHeader);
  nghttp2_session_callbacks_set_on_frame_recv_callback(cb, &Http2Callbacks::onFrameRecv);
  nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, &Http2Callbacks::onDataChunk);
  nghttp2_session_callbacks_set_on_stream_close_callback(cb, &Http2Callbacks::onStreamClose);
  nghttp2_session_callbacks_set_send_callback(cb, &Http2Callbacks::onSend);
  nghttp2_option* opt = nullptr;
  nghttp2_option_new(&opt);
  // Windows move when the backend has read the data, not when it arrived.
  nghttp2_option_set_no_auto_window_update(opt, 1);
  // Rapid reset (CVE-2023-44487): past a burst of 1000 resets, at most 33 per second,
  // then GOAWAY. CONTINUATION flood: at most 8 CONTINUATION frames per header block.
  nghttp2_option_set_stream_reset_rate_limit(opt, 1000, 33);
  nghttp2_option_set_max_continuations(opt, 8);
  nghttp2_option_set_max_settings(opt, 32);
  nghttp2_option_set_max_outbound_ack(opt, 1000);
  nghttp2_session_server_new2(&session_, cb, this, opt);
  nghttp2_option_del(opt);
  nghttp2_session_callbacks_del(cb);
}

Http2Session::~Http2Session() {
  shutdown();
  streams_.clear();
  nghttp2_session_del(session_);
}

void Http2Session::shutdown() {
  if (shut_) return;
  shut_ = true;
  body_ready_.clear();
  writable_.clear();
  for (auto& [id, st] : streams_) st->closed(false);
}

bool Http2Session::start() {
  const config::Http2Settings& limits = conn_.info_->http2;
  nghttp2_settings_entry settings[] = {
      {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, limits.max_concurrent_streams},
      {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, limits.initial_stream_window},
      {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, limits.max_header_list_size},
  };
  if (nghttp2_submit_settings(session_, NGHTTP2_FLAG_NONE, settings, std::size(settings)) != 0) {
    return false;
  }
  nghttp2_session_set_local_window_size(session_, NGHTTP2_FLAG_NONE, 0,
                                        static_cast<int32_t>(limits.connection_window));
  sendPending();
  return true;
}

bool Http2Session::receive(evbuffer* in) {
  bool ok = true;
  while (evbuffer_get_length(in) > 0) {
    size_t len = evbuffer_get_contiguous_space(in);
    const unsigned char* data = evbuffer_pullup(in, static_cast<ssize_t>(len));
    in_callback_ = true;
    ssize_t n = nghttp2_session_mem_recv(session_, data, len);
    in_callback_ = false;
    if (n < 0) {
      LOG_DEBUG("HTTP/2 from %s: %s", conn_.client_ip_, nghttp2_strerror(static_cast<int>(n)));
      evbuffer_drain(in, evbuffer_get_length(in));
      ok = false;
      break;
    }
    evbuffer_drain(in, static_cast<size_t>(n));
  }
  runNotifications();
  sendPending();
  return ok;
}

void Http2Session::runNotifications() {
  if (notifying_) return;  // the loop below picks up what nested calls add
  notifying_ = true;
  // Copies: a notification may end streams, which edits these lists.
  while (!shut_ && (!body_ready_.empty() || !writable_.empty())) {
    std::vector<Http2Stream*> body;
    body.swap(body_ready_);
    for (Http2Stream* st : body) {
      if (streams_.count(st->id()) && streams_[st->id()].get() == st) st->notifyBody();
    }
    std::vector<Http2Stream*> writable;
    writable.swap(writable_);
    for (Http2Stream* st : writable) {
      if (streams_.count(st->id()) && streams_[st->id()].get() == st) st->notifyWritable();
    }
  }
  notifying_ = false;
}

void Http2Session::notifyBody(Http2Stream* stream) {
  if (std::find(body_ready_.begin(), body_ready_.end(), stream) == body_ready_.end()) {
    body_ready_.push_back(stream);
  }
}

void Http2Session::notifyWritable(Http2Stream* stream) {
  if (std::find(writable_.begin(), writable_.end(), stream) == writable_.end()) {
    writable_.push_back(stream);
  }
}

void Http2Session::sendPending() {
  if (in_callback_ || sending_ || shut_) return;  // receive() sends once nghttp2 returns
  sending_ = true;
  in_callback_ = true;
  // Serialises what flow control allows, until the output is full (onSend).
  int rv = nghttp2_session_send(session_);
  in_callback_ = false;
  sending_ = false;
  if (rv != 0) LOG_DEBUG("HTTP/2 to %s: %s", conn_.client_ip_, nghttp2_strerror(rv));
  conn_.flush();
  if (!shut_ && (!writable_.empty() || !body_ready_.empty())) runNotifications();
  // The last stream of a draining connection ended: let the connection close (from
  // the loop, not from inside this call).
  if (!shut_ && streams_.empty() && conn_.draining()) conn_.wake(&conn_.write_ev_, EV_WRITE);
}

void Http2Session::onWritable() { sendPending(); }

void Http2Session::drain() {
  nghttp2_submit_goaway(session_, NGHTTP2_FLAG_NONE,
                        nghttp2_session_get_last_proc_stream_id(session_), NGHTTP2_NO_ERROR,
                        nullptr, 0);
  sendPending();
}

bool Http2Session::done() const {
  return !nghttp2_session_want_read(session_) && !nghttp2_session_want_write(session_);
}

}  // namespace sluice
