// Normalises a request path before routing so that one resource has one spelling:
// percent-decodes unreserved characters, resolves "." and ".." segments, collapses
// duplicate slashes. Refuses paths that escape the root or are malformed, because a
// router and an upstream that disagree on a path are an access-control bypass.
#pragma once

#include <string>
#include <string_view>

namespace sluice::router {

enum class PathStatus { kOk, kInvalid, kEscapesRoot };

// `raw` is the origin-form path (starts with '/', no query). Writes the normalised
// path to `out` (cleared first; its capacity is reused). Invalid: not starting with
// '/', bad percent-escape ("%zz", truncated), encoded NUL ("%00") or control bytes.
// Escapes root: ".." (also as "%2e%2e") above "/". Reserved characters stay encoded
// ("%2F" is not a separator) and their hex is upper-cased. A trailing slash is kept
// ("/a/b/", and "/a/." gives "/a/"): upstreams may treat it as meaningful. Other bytes,
// including non-ASCII, pass through unchanged; the HTTP parser decides what it accepts.
// On any status but kOk, `out` is left empty.
PathStatus normalizePath(std::string_view raw, std::string& out);

}  // namespace sluice::router
