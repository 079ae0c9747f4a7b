// access_log pieces without the binary: JSON escaping (always valid JSON, whatever the
// bytes), timestamps, and LogWriter (every line written once, whole and in order per
// thread; drops counted when the output stalls; reopen; metrics).
#include <fcntl.h>
#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "filters/access_log/json_line.h"
#include "filters/access_log/log_writer.h"

namespace sluice::access_log {
namespace {

std::string jsonQuoted(std::string_view in) {
  std::string out;
  appendJsonString(out, in);
  return out;
}

// What a strict JSON parser makes of our output (throws if it is not valid JSON).
std::string parsed(std::string_view in) {
  return nlohmann::json::parse(jsonQuoted(in)).get<std::string>();
}

TEST(JsonString, PlainTextPassesThrough) {
  EXPECT_EQ(jsonQuoted("/users/42?x=1"), "\"/users/42?x=1\"");
  EXPECT_EQ(jsonQuoted(""), "\"\"");
}

TEST(JsonString, EscapesQuotesBackslashesAndControls) {
  EXPECT_EQ(jsonQuoted("a\"b\\c"), R"("a\"b\\c")");
  EXPECT_EQ(jsonQuoted("a\nb\rc\td"), R"("a\nb\rc\td")");
  EXPECT_EQ(jsonQuoted(std::string("\x01\x1f\x00", 3)), R"("\u0001\u001f\u0000")");
  EXPECT_EQ(parsed("line\"}\n{\"injected\":1"), "line\"}\n{\"injected\":1");
}

TEST(JsonString, ValidUtf8PassesThrough) {
  const std::string text = "caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80";  // é € 😀
  EXPECT_EQ(jsonQuoted(text), "\"" + text + "\"");
  EXPECT_EQ(parsed(text), text);
}

TEST(JsonString, InvalidUtf8BecomesLatin1Escapes) {
  // A lone continuation byte, a truncated sequence, an overlong '/', a surrogate, a
  // code point beyond U+10FFFF, and 0xFF.
  EXPECT_EQ(jsonQuoted("\x80"), R"("\u0080")");
  EXPECT_EQ(jsonQuoted("a\xC3"), R"("a\u00c3")");
  EXPECT_EQ(jsonQuoted("\xC0\xAF"), R"("\u00c0\u00af")");
  EXPECT_EQ(jsonQuoted("\xED\xA0\x80"), R"("\u00ed\u00a0\u0080")");
  EXPECT_EQ(jsonQuoted("\xF4\x90\x80\x80"), R"("\u00f4\u0090\u0080\u0080")");
  EXPECT_EQ(jsonQuoted("\xFF"), R"("\u00ff")");
  EXPECT_EQ(parsed("x\xFFy"), "x\xC3\xBFy");  // U+00FF in UTF-8
}

TEST(JsonString, EveryByteYieldsValidJson) {
  std::string all;
  for (int i = 0; i < 256; ++i) all.push_back(static_cast<char>(i));
  for (int i = 0; i < 256; ++i) all.push_back(static_cast<char>(255 - i));
  EXPECT_NO_THROW(parsed(all));
  for (size_t n = 1; n <= 4; ++n) {
    for (size_t off = 0; off + n <= all.size(); ++off) {
      ASSERT_NO_THROW(parsed(all.substr(off, n))) << off << "+" << n;
    }
  }
}

// Long strings take the 8-bytes-at-a-time path: a special byte at every position and
// in every lane must still be seen.
TEST(JsonString, SpecialBytesAtEveryPositionOfLongStrings) {
  const std::string base = "/abcdefghijklmnopqrstuvwxyz0123456789-._~?&=";
  for (char special : {'"', '\\', '\n', '\x01', '\x1f', '\x7f'}) {
    for (size_t i = 0; i < base.size(); ++i) {
      std::string text = base;
      text[i] = special;
      ASSERT_EQ(parsed(text), text) << i << " " << int(special);
    }
  }
  for (size_t i = 0; i < base.size(); ++i) {
    std::string text = base;
    text[i] = '\xff';
    std::string expected = base.substr(0, i) + "\xC3\xBF" + base.substr(i + 1);
    ASSERT_EQ(parsed(text), expected) << i;
    text = base;
    text.replace(i, 1, "\xE2\x82\xAC");  // a valid 3-byte sequence across lanes
    ASSERT_EQ(jsonQuoted(text), "\"" + text + "\"") << i;
  }
}

TEST(Timestamp, Rfc3339UtcWithMilliseconds) {
  std::string out;
  appendTimestamp(out, 0);
  EXPECT_EQ(out, "1970-01-01T00:00:00.000Z");
  out.clear();
  appendTimestamp(out, 1'700'000'000'123'456);
  EXPECT_EQ(out, "2023-11-14T22:13:20.123Z");
  out.clear();
  appendTimestamp(out, 1'700'000'000'999'999);  // same second: the cached date part
  EXPECT_EQ(out, "2023-11-14T22:13:20.999Z");
  out.clear();
  appendTimestamp(out, 1'709'251'199'000'000);  // leap day, last second
  EXPECT_EQ(out, "2024-02-29T23:59:59.000Z");
  out.clear();
  appendTimestamp(out, 4'102'444'800'007'000);
  EXPECT_EQ(out, "2100-01-01T00:00:00.007Z");
}

TEST(Millis, ThreeDecimals) {
  std::string out;
  appendMillis(out, 0);
  out += ' ';
  appendMillis(out, 1234);
  out += ' ';
  appendMillis(out, 5);
  out += ' ';
  appendMillis(out, 60'000'010);
  EXPECT_EQ(out, "0.000 1.234 0.005 60000.010");
}

class TempDir : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/access-log-test-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { std::system(("rm -rf " + dir_).c_str()); }

  static std::string read(const std::string& path) {
    std::ifstream f(path);
    std::stringstream ss;
    ss << f.rdbuf();
    return ss.str();
  }
  static std::vector<std::string> lines(const std::string& text) {
    std::vector<std::string> out;
    std::istringstream in(text);
    for (std::string l; std::getline(in, l);) out.push_back(l);
    return out;
  }
  // Waits until `path` holds at least `n` lines.
  static bool waitLines(const std::string& path, size_t n) {
    for (int i = 0; i < 500; ++i) {
      if (lines(read(path)).size() >= n) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return false;
  }

  std::string dir_;
};

using LogWriterTest = TempDir;

TEST_F(LogWriterTest, EveryLineWholeOnceAndInOrderPerThread) {
  const std::string path = dir_ + "/access.log";
  auto writer = LogWriter::forOutput(path);
  constexpr int kThreads = 4, kLines = 20000;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      std::string line;
      for (int i = 0; i < kLines; ++i) {
        // Some lines larger than a block, to cross block boundaries every way.
        size_t pad = i % 997 == 0 ? 70'000 : static_cast<size_t>(i % 50);
        line = std::to_string(t) + " " + std::to_string(i) + " " + std::string(pad, 'x') + "\n";
        ASSERT_TRUE(writer->append(line, 64 << 20));
      }
    });
  }
  for (auto& t : threads) t.join();
  writer->close();
  std::vector<int> next(kThreads, 0);
  size_t count = 0;
  for (const std::string& l : lines(read(path))) {
    int t = -1, i = -1;
    ASSERT_EQ(std::sscanf(l.c_str(), "%d %d", &t, &i), 2) << l.substr(0, 80);
    ASSERT_TRUE(t >= 0 && t < kThreads);
    ASSERT_EQ(i, next[t]) << "thread " << t;
    size_t pad = i % 997 == 0 ? 70'000 : static_cast<size_t>(i % 50);
    ASSERT_EQ(l.size(), std::to_string(t).size() + std::to_string(i).size() + 2 + pad);
    ++next[t];
    ++count;
  }
  EXPECT_EQ(count, static_cast<size_t>(kThreads * kLines));
  EXPECT_EQ(writer->lines(), static_cast<uint64_t>(kThreads * kLines));
  EXPECT_EQ(writer->dropped(), 0u);
}

TEST_F(LogWriterTest, SameOutputSharesOneWriter) {
  auto a = LogWriter::forOutput(dir_ + "/x.log");
  auto b = LogWriter::forOutput(dir_ + "/x.log");
  auto c = LogWriter::forOutput(dir_ + "/y.log");
  EXPECT_EQ(a.get(), b.get());
  EXPECT_NE(a.get(), c.get());
}

TEST_F(LogWriterTest, StalledOutputDropsAndCounts) {
  // A FIFO nobody reads: the pipe fills, the writer waits, this thread's backlog hits
  // the cap and further lines are refused without blocking.
  const std::string path = dir_ + "/fifo";
  ASSERT_EQ(mkfifo(path.c_str(), 0600), 0);
  int reader = ::open(path.c_str(), O_RDONLY | O_NONBLOCK);
  ASSERT_GE(reader, 0);
  auto writer = LogWriter::forOutput(path);
  const std::string line(1023, 'z');
  const std::string full = line + "\n";
  constexpr int kLines = 2000;  // 2 MB against a 64 KiB pipe and a 64 KiB cap
  auto start = std::chrono::steady_clock::now();
  int refused = 0;
  for (int i = 0; i < kLines; ++i) {
    if (!writer->append(full, 64 * 1024)) ++refused;
  }
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(1));  // never waits
  EXPECT_GT(refused, kLines / 2);
  EXPECT_EQ(writer->lines() + writer->dropped(), static_cast<uint64_t>(kLines));

  std::string metrics;
  LogWriter::appendMetrics(metrics);
  EXPECT_NE(metrics.find("sluice_access_log_dropped_total{output=\"" + path + "\"} " +
                         std::to_string(refused) + "\n"),
            std::string::npos)
      << metrics;
  EXPECT_NE(metrics.find("# TYPE sluice_access_log_lines_total counter\n"), std::string::npos);

  // Now read: every accepted line arrives whole.
  std::string got;
  const size_t expected = (kLines - refused) * full.size();
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  char buf[65536];
  while (got.size() < expected && std::chrono::steady_clock::now() < deadline) {
    ssize_t n = ::read(reader, buf, sizeof buf);
    if (n > 0) {
      got.append(buf, static_cast<size_t>(n));
    } else {
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
  }
  writer->close();
  ::close(reader);
  EXPECT_EQ(got.size(), (kLines - refused) * full.size());
  for (const std::string& l : lines(got)) ASSERT_EQ(l, line);
}

TEST_F(LogWriterTest, ReopenStartsANewFileAtThePath) {
  const std::string path = dir_ + "/access.log";
  auto writer = LogWriter::forOutput(path);
  for (int i = 0; i < 3; ++i) writer->append("before\n", 1 << 20);
  ASSERT_TRUE(waitLines(path, 3));
  ASSERT_EQ(::rename(path.c_str(), (path + ".1").c_str()), 0);
  writer->reopen();
  struct stat st;
  for (int i = 0; i < 500 && ::stat(path.c_str(), &st) != 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ASSERT_EQ(::stat(path.c_str(), &st), 0) << "reopen did not create the file";
  for (int i = 0; i < 2; ++i) writer->append("after\n", 1 << 20);
  writer->close();
  EXPECT_EQ(read(path + ".1"), "before\nbefore\nbefore\n");
  EXPECT_EQ(read(path), "after\nafter\n");
}

TEST_F(LogWriterTest, FileOpenedOnlyWhenTheFirstLineArrives) {
  const std::string path = dir_ + "/lazy.log";
  auto writer = LogWriter::forOutput(path);
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  struct stat st;
  EXPECT_NE(::stat(path.c_str(), &st), 0);  // `sluice validate` creates no files
  writer->append("x\n", 1 << 20);
  writer->close();
  EXPECT_EQ(read(path), "x\n");
}

TEST_F(LogWriterTest, ReleasingTheLastOwnerStillWritesEverything) {
  const std::string path = dir_ + "/release.log";
  {
    auto writer = LogWriter::forOutput(path);
    for (int i = 0; i < 1000; ++i) writer->append("line\n", 1 << 20);
  }  // the destructor does not wait; the thread finishes on its own
  EXPECT_TRUE(waitLines(path, 1000));
  EXPECT_EQ(lines(read(path)).size(), 1000u);
}

}  // namespace
}  // namespace sluice::access_log
