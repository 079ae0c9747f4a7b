/* The plugin ABI: what a filter in a shared object exports and what sluice gives it.
 * Plain C on both sides, versioned, so a plugin never depends on sluice's C++ types or
 * compiler. It must never block the worker thread, and it must never call the host from
 * a thread of its own.
 *
 * A plugin exports two symbols:
 *
 *   const uint32_t sluice_plugin_abi_version = SLUICE_PLUGIN_ABI_VERSION;
 *   const sluice_plugin_v1* sluice_plugin_init(uint32_t host_abi_version,
 *                                              const sluice_host_v1* host);
 *
 * sluice reads sluice_plugin_abi_version before it calls anything in the plugin and
 * refuses a plugin built for another ABI version. SLUICE_PLUGIN_DEFINE_ABI_VERSION()
 * defines the first symbol; sluice_plugin_init may be called more than once (once per
 * configuration load) and should return the same static table each time.
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define SLUICE_PLUGIN_ABI_VERSION 1u

/* What on_request / on_response return. */
#define SLUICE_CONTINUE 0
#define SLUICE_STOP 1 /* the plugin will call host->resume() or host->reply() later */

/* What host calls return (>= 0: success). */
#define SLUICE_OK 0
#define SLUICE_ERR_STALE (-1)     /* the request is over: the handle is no longer valid */
#define SLUICE_ERR_PHASE (-2)     /* not allowed now (e.g. resume() when not stopped) */
#define SLUICE_ERR_INVALID (-3)   /* bad argument (header name, CR/LF in a value, status) */
#define SLUICE_ERR_NOT_FOUND (-4) /* no such header or context value */

/* Log levels for host->log. */
#define SLUICE_LOG_DEBUG 0
#define SLUICE_LOG_INFO 1
#define SLUICE_LOG_WARN 2
#define SLUICE_LOG_ERROR 3

/* One request as the plugin sees it. Valid from on_request until on_done returns; after
 * that every host call with it returns SLUICE_ERR_STALE (also when the memory behind it
 * serves another request), so a plugin may keep a handle without harm. 0 is never valid. */
typedef uint64_t sluice_request;

/* A view of bytes owned by sluice: valid until the plugin callback returns or the host
 * call that changes that value, whichever comes first. Not NUL-terminated. */
typedef struct sluice_str {
  const char* data;
  size_t len;
} sluice_str;

/* Facts about the request for host->get. New values are only ever appended. */
enum sluice_field {
  SLUICE_FIELD_METHOD = 1,
  SLUICE_FIELD_PATH = 2,  /* normalised, after any rewrite by earlier filters */
  SLUICE_FIELD_QUERY = 3, /* without '?' */
  SLUICE_FIELD_HOST = 4,
  SLUICE_FIELD_CLIENT_IP = 5,
  SLUICE_FIELD_ROUTE = 6, /* the matched route's name; empty when none matched */
  SLUICE_FIELD_REQUEST_ID = 7,
  SLUICE_FIELD_PRINCIPAL = 8
};

/* A deferred call (host->defer). Runs exactly once, on the worker's thread: when the delay
 * has passed (cancelled = 0), or when the request ends first (cancelled = 1, before
 * on_done; host->resume and host->reply then return SLUICE_ERR_STALE). */
typedef void (*sluice_deferred_fn)(sluice_request req, void* user_data, int cancelled);

/* What sluice gives the plugin. Every function must be called on the thread that called
 * the plugin (the worker running the request). Later ABI versions only append fields. */
typedef struct sluice_host_v1 {
  uint32_t abi_version; /* SLUICE_PLUGIN_ABI_VERSION of the host */
  uint32_t size;        /* sizeof(sluice_host_v1) as the host was built */

  int (*get)(sluice_request req, int field, sluice_str* out);
  /* First value of a request header (case-insensitive name). Readable at any time. */
  int (*get_request_header)(sluice_request req, const char* name, size_t name_len, sluice_str* out);
  /* Request phase only: replaces every value of `name`, or removes them. */
  int (*set_request_header)(sluice_request req, const char* name, size_t name_len,
                            const char* value, size_t value_len);
  int (*remove_request_header)(sluice_request req, const char* name, size_t name_len);
  /* Request phase only: the path sent to the backend ('/' first, no query). */
  int (*set_path)(sluice_request req, const char* path, size_t len);

  /* Response status (0 before there is a response) and headers: readable in on_response
   * and on_done, writable in the response phase (until the plugin continues). */
  int (*get_status)(sluice_request req);
  int (*get_response_header)(sluice_request req, const char* name, size_t name_len,
                             sluice_str* out);
  int (*set_response_header)(sluice_request req, const char* name, size_t name_len,
                             const char* value, size_t value_len);
  int (*remove_response_header)(sluice_request req, const char* name, size_t name_len);

  /* The per-request context that filters share (claims, authorizer context, ...). */
  int (*get_context)(sluice_request req, const char* key, size_t key_len, sluice_str* out);
  int (*set_context)(sluice_request req, const char* key, size_t key_len, const char* value,
                     size_t value_len);

  /* Continues the chain after the plugin returned SLUICE_STOP (or before it returns). */
  int (*resume)(sluice_request req);
  /* Answers locally with {"message": message} as JSON; status 200-599. Allowed while the
   * plugin is being called or has stopped the chain. */
  int (*reply)(sluice_request req, int status, const char* message, size_t message_len);
  /* Calls fn(req, user_data, 0) on the worker's loop after delay_ms (see
   * sluice_deferred_fn): the way to stop the chain and resume it later without threads. */
  int (*defer)(sluice_request req, uint32_t delay_ms, sluice_deferred_fn fn, void* user_data);

  void (*log)(int level, const char* message, size_t len);
} sluice_host_v1;

/* What the plugin gives sluice. create and destroy are required; the callbacks may be
 * NULL (then the plugin does nothing in that phase). */
typedef struct sluice_plugin_v1 {
  uint32_t abi_version; /* SLUICE_PLUGIN_ABI_VERSION the plugin was built with */
  const char* name;     /* for logs */

  /* One configured use of the plugin (one entry in a filter list), when the config
   * loads: `config_json` is the filter's settings as a JSON object (NUL-terminated).
   * Returns the instance, or NULL after writing a message (NUL-terminated, at most
   * error_size bytes) into `error`: it becomes a FILE:LINE:COL config error. The
   * instance is shared by every worker thread: treat it as read-only after create. */
  void* (*create)(const char* config_json, size_t config_len, char* error, size_t error_size);
  /* When the last configuration that uses the instance is gone (on any thread). */
  void (*destroy)(void* instance);

  /* Request phase, in chain order. `*request_data` starts NULL; the plugin may keep a
   * pointer of its own there for this request (on_done gets it back to free it). */
  int (*on_request)(void* instance, sluice_request req, void** request_data);
  /* Response phase, in reverse chain order. */
  int (*on_response)(void* instance, sluice_request req, void** request_data);
  /* Always called once for every request that reached the plugin, success or not. */
  void (*on_done)(void* instance, sluice_request req, void* request_data);
} sluice_plugin_v1;

#define SLUICE_PLUGIN_EXPORT __attribute__((visibility("default")))

extern SLUICE_PLUGIN_EXPORT const uint32_t sluice_plugin_abi_version;
SLUICE_PLUGIN_EXPORT const sluice_plugin_v1* sluice_plugin_init(uint32_t host_abi_version,
                                                                const sluice_host_v1* host);

/* In exactly one source file of the plugin. */
#define SLUICE_PLUGIN_DEFINE_ABI_VERSION() \
  const uint32_t sluice_plugin_abi_version = SLUICE_PLUGIN_ABI_VERSION

#ifdef __cplusplus
}
#endif
