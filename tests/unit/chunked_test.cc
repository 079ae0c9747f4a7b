#include "gateway/http/chunked.h"

#include <event2/buffer.h>
#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

namespace sluice::http {
namespace {

using Status = ChunkedDecoder::Status;

struct BufferFree {
  void operator()(evbuffer* b) const { evbuffer_free(b); }
};
using Buffer = std::unique_ptr<evbuffer, BufferFree>;

Buffer makeBuffer(std::string_view s = {}) {
  Buffer b(evbuffer_new());
  if (!s.empty()) evbuffer_add(b.get(), s.data(), s.size());
  return b;
}

std::string contents(evbuffer* b) {
  std::string s(evbuffer_get_length(b), '\0');
  evbuffer_copyout(b, s.data(), s.size());
  return s;
}

struct Decoded {
  Status status;
  std::string payload;
  std::string left;  // what stayed in `in`
};

Decoded decodeAll(std::string_view wire, size_t max_out = SIZE_MAX) {
  ChunkedDecoder d;
  Buffer in = makeBuffer(wire);
  Buffer out = makeBuffer();
  Status s = d.decode(in.get(), out.get(), max_out);
  return {s, contents(out.get()), contents(in.get())};
}

Status statusOf(std::string_view wire) { return decodeAll(wire).status; }

TEST(ChunkedDecoder, DecodesChunksAndLeavesTheNextMessage) {
  ChunkedDecoder d;
  Buffer in = makeBuffer("5\r\nhello\r\n6\r\n world\r\n0\r\n\r\nGET / HTTP/1.1\r\n");
  Buffer out = makeBuffer();
  ASSERT_EQ(d.decode(in.get(), out.get()), Status::kDone) << d.error();
  EXPECT_EQ(contents(out.get()), "hello world");
  EXPECT_EQ(d.payloadBytes(), 11u);
  EXPECT_EQ(contents(in.get()), "GET / HTTP/1.1\r\n");
  // Done is sticky and never touches the next message.
  EXPECT_EQ(d.decode(in.get(), out.get()), Status::kDone);
  EXPECT_EQ(contents(in.get()), "GET / HTTP/1.1\r\n");
}

TEST(ChunkedDecoder, EmptyBody) {
  Decoded r = decodeAll("0\r\n\r\n");
  EXPECT_EQ(r.status, Status::kDone);
  EXPECT_EQ(r.payload, "");
  EXPECT_EQ(r.left, "");
}

TEST(ChunkedDecoder, HexIsCaseInsensitiveAndMayHaveLeadingZeros) {
  std::string body(26, 'x');
  Decoded r = decodeAll("A\r\n" + body.substr(0, 10) + "\r\n0010\r\n" + body.substr(0, 16) +
                        "\r\n0000000000000000\r\n\r\n");
  EXPECT_EQ(r.status, Status::kDone);
  EXPECT_EQ(r.payload, body);
}

TEST(ChunkedDecoder, ByteAtATime) {
  const std::string wire =
      "4;ext=1\r\nWiki\r\n5\r\npedia\r\nE\r\n in\r\n\r\nchunks.\r\n0\r\nX-T: v\r\n\r\nnext";
  ChunkedDecoder d;
  Buffer in = makeBuffer();
  Buffer out = makeBuffer();
  Status s = Status::kNeedMore;
  size_t fed = 0;
  for (; fed < wire.size() && s == Status::kNeedMore; ++fed) {
    evbuffer_add(in.get(), &wire[fed], 1);
    s = d.decode(in.get(), out.get());
  }
  ASSERT_EQ(s, Status::kDone) << d.error();
  EXPECT_EQ(fed, wire.size() - 4);  // done exactly at the final LF
  EXPECT_EQ(contents(out.get()), "Wikipedia in\r\n\r\nchunks.");
  EXPECT_EQ(contents(in.get()), "");
}

TEST(ChunkedDecoder, EverySplitPointGivesTheSameResult) {
  const std::string wire = "3;a=\"b c\"\r\nabc\r\n2\r\nde\r\n0\r\nT: 1\r\n\r\nrest";
  for (size_t cut = 0; cut <= wire.size(); ++cut) {
    ChunkedDecoder d;
    Buffer in = makeBuffer(wire.substr(0, cut));
    Buffer out = makeBuffer();
    Status first = d.decode(in.get(), out.get());
    ASSERT_NE(first, Status::kError) << cut << ": " << d.error();
    evbuffer_add(in.get(), wire.data() + cut, wire.size() - cut);
    ASSERT_EQ(d.decode(in.get(), out.get()), Status::kDone) << cut;
    EXPECT_EQ(contents(out.get()), "abcde") << cut;
    EXPECT_EQ(contents(in.get()), "rest") << cut;
  }
}

TEST(ChunkedDecoder, ExtensionsAreIgnored) {
  for (const char* size_line :
       {"5;foo=bar", "5;foo", "5;a=1;b=\"x;y\"", "5 ;a", "5\t; a = b", "5;caf\xc3\xa9"}) {
    Decoded r = decodeAll(std::string(size_line) + "\r\nhello\r\n0;last\r\n\r\n");
    EXPECT_EQ(r.status, Status::kDone) << size_line;
    EXPECT_EQ(r.payload, "hello") << size_line;
  }
}

TEST(ChunkedDecoder, TrailersAreValidatedAndDiscarded) {
  Decoded r = decodeAll("3\r\nabc\r\n0\r\nX-Checksum: 900150983cd24fb0\r\nX-Empty:\r\n\r\nZ");
  EXPECT_EQ(r.status, Status::kDone);
  EXPECT_EQ(r.payload, "abc");
  EXPECT_EQ(r.left, "Z");
}

TEST(ChunkedDecoder, MalformedFramingIsAnError) {
  const std::vector<std::string> bad = {
      "g\r\n",                         // non-hex size
      "\r\n",                          // empty size
      "-1\r\n",                        // sign
      "0x5\r\nhello\r\n",              // C-style hex
      " 5\r\nhello\r\n",               // leading whitespace
      "5 \r\nhello\r\n",               // whitespace without an extension
      "5\nhello\r\n",                  // bare LF after the size
      "5\rhello\r\n",                  // bare CR after the size
      "5;a\x01\r\nhello\r\n",          // CTL in an extension
      "5;a\x7f\r\nhello\r\n",          // DEL in an extension
      "5\r\nhelloX\r\n",               // data longer than its size
      "5\r\nhello\n0\r\n\r\n",         // LF alone after data
      "5\r\nhello\r0\r\n\r\n",         // CR alone after data
      "5\r\nhello0\r\n\r\n",           // no CRLF after data
      "0\r\nBad Name: x\r\n\r\n",      // trailer name with SP
      "0\r\nName : x\r\n\r\n",         // SP before colon
      "0\r\nNoColon\r\n\r\n",          // trailer without colon
      "0\r\nA: b\r\n folded\r\n\r\n",  // obs-fold in trailers
      "0\r\nA: b\x01\r\n\r\n",         // CTL in trailer value
      "0\r\nA: b\nB: c\r\n\r\n",       // bare LF in trailers
      "0\r\n\rX",                      // CR not followed by LF at the end
      "10000000000000000\r\n",         // 17 digits
      "00000000000000001\r\n",         // 17 digits, even if the value is small
      "8000000000000000\r\n",          // above INT64_MAX
      "ffffffffffffffff\r\n",          // above INT64_MAX
  };
  for (const std::string& wire : bad) {
    ChunkedDecoder d;
    Buffer in = makeBuffer(wire);
    EXPECT_EQ(d.decode(in.get(), nullptr), Status::kError) << wire;
    EXPECT_NE(d.error(), nullptr) << wire;
    EXPECT_EQ(d.decode(in.get(), nullptr), Status::kError) << "sticky: " << wire;
  }
}

TEST(ChunkedDecoder, LargestSizeIsAcceptedAndStreams) {
  ChunkedDecoder d;
  Buffer in = makeBuffer("7fffffffffffffff\r\nabc");
  Buffer out = makeBuffer();
  EXPECT_EQ(d.decode(in.get(), out.get()), Status::kNeedMore);
  EXPECT_EQ(contents(out.get()), "abc");
}

TEST(ChunkedDecoder, SizeLineIsBounded) {
  std::string ext = "1;" + std::string(5000, 'a');  // no CRLF ever comes
  ChunkedDecoder d;
  Buffer in = makeBuffer(ext.substr(0, 4000));
  EXPECT_EQ(d.decode(in.get(), nullptr), Status::kNeedMore);
  evbuffer_add(in.get(), ext.data() + 4000, ext.size() - 4000);
  EXPECT_EQ(d.decode(in.get(), nullptr), Status::kError);

  // The bound is 4 KiB including the CRLF.
  std::string ok = "1;" + std::string(4096 - 4, 'a') + "\r\nx\r\n0\r\n\r\n";
  EXPECT_EQ(statusOf(ok), Status::kDone);
  std::string over = "1;" + std::string(4096 - 3, 'a') + "\r\nx\r\n0\r\n\r\n";
  EXPECT_EQ(statusOf(over), Status::kError);
}

TEST(ChunkedDecoder, TrailerSectionIsBounded) {
  std::string small = "0\r\nX: " + std::string(8000, 'v') + "\r\n\r\n";
  EXPECT_EQ(statusOf(small), Status::kDone);
  std::string big =
      "0\r\nX: " + std::string(4000, 'v') + "\r\nY: " + std::string(4200, 'v') + "\r\n\r\n";
  EXPECT_EQ(statusOf(big), Status::kError);
}

TEST(ChunkedDecoder, MaxOutIsRespected) {
  std::string data(100, 'd');
  for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<char>('a' + i % 26);
  ChunkedDecoder d;
  Buffer in = makeBuffer("64\r\n" + data + "\r\n0\r\n\r\nnext");
  Buffer out = makeBuffer();
  std::vector<size_t> sizes;
  Status s;
  do {
    size_t before = evbuffer_get_length(out.get());
    s = d.decode(in.get(), out.get(), 30);
    sizes.push_back(evbuffer_get_length(out.get()) - before);
  } while (s == Status::kNeedMore && sizes.size() < 10);
  ASSERT_EQ(s, Status::kDone);
  // The last 10 bytes fit the budget, so the same call reads the framing to the end.
  EXPECT_EQ(sizes, (std::vector<size_t>{30, 30, 30, 10}));
  EXPECT_EQ(contents(out.get()), data);
  EXPECT_EQ(contents(in.get()), "next");
}

TEST(ChunkedDecoder, MaxOutAcrossSmallChunks) {
  ChunkedDecoder d;
  Buffer in = makeBuffer("2\r\nab\r\n2\r\ncd\r\n2\r\nef\r\n0\r\n\r\n");
  Buffer out = makeBuffer();
  EXPECT_EQ(d.decode(in.get(), out.get(), 3), Status::kNeedMore);
  EXPECT_EQ(contents(out.get()), "abc");
  EXPECT_EQ(d.decode(in.get(), out.get(), 0), Status::kNeedMore);
  EXPECT_EQ(contents(out.get()), "abc");
  EXPECT_EQ(d.decode(in.get(), out.get(), 3), Status::kDone);
  EXPECT_EQ(contents(out.get()), "abcdef");
  EXPECT_EQ(d.payloadBytes(), 6u);
}

TEST(ChunkedDecoder, NullOutDrainsPayload) {
  ChunkedDecoder d;
  Buffer in = makeBuffer("5\r\nhello\r\n0\r\n\r\nX");
  EXPECT_EQ(d.decode(in.get(), nullptr), Status::kDone);
  EXPECT_EQ(d.payloadBytes(), 5u);
  EXPECT_EQ(contents(in.get()), "X");
}

TEST(ChunkedDecoder, LargeChunksMoveAcrossManyBufferChains) {
  std::string payload;
  Buffer in = makeBuffer();
  ChunkedDecoder d;
  Buffer out = makeBuffer();
  for (int i = 0; i < 64; ++i) {
    std::string piece(16 * 1024 + i, static_cast<char>('A' + i % 26));
    appendChunkHeader(in.get(), piece.size());
    // Data added in several pieces so a chunk spans chains and chains span chunks.
    evbuffer_add(in.get(), piece.data(), 1000);
    evbuffer_add(in.get(), piece.data() + 1000, piece.size() - 1000);
    evbuffer_add(in.get(), kChunkEnd, 2);
    payload += piece;
    if (i % 7 == 0) {
      ASSERT_EQ(d.decode(in.get(), out.get()), Status::kNeedMore);
    }
  }
  evbuffer_add(in.get(), kLastChunk, sizeof(kLastChunk) - 1);
  ASSERT_EQ(d.decode(in.get(), out.get()), Status::kDone) << d.error();
  EXPECT_EQ(d.payloadBytes(), payload.size());
  EXPECT_TRUE(contents(out.get()) == payload);
  EXPECT_EQ(evbuffer_get_length(in.get()), 0u);
}

TEST(ChunkedDecoder, ResetAllowsReuse) {
  ChunkedDecoder d;
  Buffer in = makeBuffer("zz\r\n");
  ASSERT_EQ(d.decode(in.get(), nullptr), Status::kError);
  d.reset();
  EXPECT_EQ(d.error(), nullptr);
  EXPECT_EQ(d.payloadBytes(), 0u);
  Buffer in2 = makeBuffer("1\r\na\r\n0\r\n\r\n");
  Buffer out = makeBuffer();
  EXPECT_EQ(d.decode(in2.get(), out.get()), Status::kDone);
  EXPECT_EQ(contents(out.get()), "a");
}

TEST(AppendChunkHeader, WritesLowercaseHex) {
  const std::vector<std::pair<size_t, std::string>> cases = {
      {0, "0\r\n"},
      {1, "1\r\n"},
      {10, "a\r\n"},
      {255, "ff\r\n"},
      {4096, "1000\r\n"},
      {0xdeadbeef, "deadbeef\r\n"},
      {SIZE_MAX, std::string(sizeof(size_t) * 2, 'f') + "\r\n"},
  };
  for (const auto& [len, want] : cases) {
    Buffer b = makeBuffer();
    appendChunkHeader(b.get(), len);
    EXPECT_EQ(contents(b.get()), want) << len;
  }
}

TEST(AppendChunkHeader, RoundTripsThroughTheDecoder) {
  Buffer wire = makeBuffer();
  std::string payload;
  for (size_t n : {1u, 15u, 16u, 300u}) {
    std::string piece(n, 'q');
    appendChunkHeader(wire.get(), n);
    evbuffer_add(wire.get(), piece.data(), n);
    evbuffer_add(wire.get(), kChunkEnd, 2);
    payload += piece;
  }
  evbuffer_add(wire.get(), kLastChunk, sizeof(kLastChunk) - 1);
  Decoded r = decodeAll(contents(wire.get()));
  EXPECT_EQ(r.status, Status::kDone);
  EXPECT_EQ(r.payload, payload);
}

}  // namespace
}  // namespace sluice::http
