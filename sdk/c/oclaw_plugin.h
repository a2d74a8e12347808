/* OpenClaw plugin SDK for C — ABI 1 (docs/plugins.md).
 *
 * Freestanding: no libc, no WASI. Build with Debian's clang and lld:
 *   clang --target=wasm32 -O2 -nostdlib -Wl,--no-entry -Wl,--export-dynamic \
 *         -I sdk/c -o plugin.wasm plugin.c
 *
 * A plugin defines one function:
 *   int oclaw_handle(oclaw_str skill, oclaw_str input);
 * which hands its output over with oclaw_output*() and answers OCLAW_OK, OCLAW_FAIL (the output
 * is the error message) or OCLAW_RETRY (a failure worth retrying).
 *
 * Every call runs in a fresh instance, so the bump allocator below never needs to free.
 */
#ifndef OCLAW_PLUGIN_H
#define OCLAW_PLUGIN_H

#define OCLAW_OK 0
#define OCLAW_FAIL 1
#define OCLAW_RETRY 2

#define OCLAW_LOG_ERROR 0
#define OCLAW_LOG_WARN 1
#define OCLAW_LOG_INFO 2
#define OCLAW_LOG_DEBUG 3

#define OCLAW_EXPORT(name) __attribute__((export_name(name)))
#define OCLAW_IMPORT(name) __attribute__((import_module("oclaw"), import_name(name)))

typedef unsigned int oclaw_size;
typedef struct {
  const char *ptr;
  oclaw_size len;
} oclaw_str;

/* Host functions (each but output needs its capability granted by the bot). */
OCLAW_IMPORT("output") void oclaw_output(const char *ptr, oclaw_size len);
OCLAW_IMPORT("log") void oclaw_log(int level, const char *ptr, oclaw_size len);
OCLAW_IMPORT("kv_get") long long oclaw_kv_get(const char *key, oclaw_size key_len);
OCLAW_IMPORT("kv_set") int oclaw_kv_set(const char *key, oclaw_size key_len, const char *json, oclaw_size json_len);
OCLAW_IMPORT("http_fetch") long long oclaw_http_fetch(const char *request_json, oclaw_size len);

int oclaw_handle(oclaw_str skill, oclaw_str input);

/* ---- memory ---------------------------------------------------------------------------- */
extern unsigned char __heap_base;
static unsigned long oclaw_heap_top = 0;

OCLAW_EXPORT("oclaw_alloc") void *oclaw_alloc(int size) {
  if (oclaw_heap_top == 0) oclaw_heap_top = (unsigned long)&__heap_base;
  unsigned long start = (oclaw_heap_top + 7) & ~7ul;
  unsigned long end = start + (unsigned long)(size < 0 ? 0 : size);
  unsigned long have = __builtin_wasm_memory_size(0) * 65536ul;
  if (end > have) {
    unsigned long pages = (end - have + 65535) / 65536;
    if (__builtin_wasm_memory_grow(0, pages) == (unsigned long)-1) return 0;
  }
  oclaw_heap_top = end;
  return (void *)start;
}

OCLAW_EXPORT("oclaw_abi_v1") void oclaw_abi_v1(void) {}

OCLAW_EXPORT("oclaw_call") int oclaw_call(const char *name, int name_len, const char *input, int input_len) {
  oclaw_str skill = {name, (oclaw_size)name_len};
  oclaw_str in = {input, (oclaw_size)input_len};
  return oclaw_handle(skill, in);
}

/* ---- strings --------------------------------------------------------------------------- */
static inline oclaw_size oclaw_strlen(const char *s) {
  oclaw_size n = 0;
  while (s[n]) n++;
  return n;
}

static inline int oclaw_str_eq(oclaw_str a, const char *b) {
  oclaw_size n = oclaw_strlen(b);
  if (a.len != n) return 0;
  for (oclaw_size i = 0; i < n; i++)
    if (a.ptr[i] != b[i]) return 0;
  return 1;
}

static inline void oclaw_output_cstr(const char *s) { oclaw_output(s, oclaw_strlen(s)); }
static inline void oclaw_log_cstr(int level, const char *s) { oclaw_log(level, s, oclaw_strlen(s)); }

/* A growable buffer for building output. */
typedef struct {
  char *ptr;
  oclaw_size len, cap;
} oclaw_buf;

static inline void oclaw_buf_reserve(oclaw_buf *b, oclaw_size more) {
  if (b->len + more <= b->cap) return;
  oclaw_size cap = b->cap ? b->cap * 2 : 256;
  while (cap < b->len + more) cap *= 2;
  char *p = (char *)oclaw_alloc((int)cap);
  for (oclaw_size i = 0; i < b->len; i++) p[i] = b->ptr[i];
  b->ptr = p;
  b->cap = cap;
}

static inline void oclaw_buf_push(oclaw_buf *b, char c) {
  oclaw_buf_reserve(b, 1);
  b->ptr[b->len++] = c;
}

static inline void oclaw_buf_raw(oclaw_buf *b, const char *s, oclaw_size n) {
  oclaw_buf_reserve(b, n);
  for (oclaw_size i = 0; i < n; i++) b->ptr[b->len++] = s[i];
}

static inline void oclaw_buf_cstr(oclaw_buf *b, const char *s) { oclaw_buf_raw(b, s, oclaw_strlen(s)); }

static inline void oclaw_buf_uint(oclaw_buf *b, unsigned long long v) {
  char tmp[24];
  int n = 0;
  do {
    tmp[n++] = (char)('0' + v % 10);
    v /= 10;
  } while (v);
  while (n) oclaw_buf_push(b, tmp[--n]);
}

/* Appends `s` as a JSON string literal (quotes included). */
static inline void oclaw_buf_json_string(oclaw_buf *b, oclaw_str s) {
  static const char hex[] = "0123456789abcdef";
  oclaw_buf_push(b, '"');
  for (oclaw_size i = 0; i < s.len; i++) {
    unsigned char c = (unsigned char)s.ptr[i];
    if (c == '"' || c == '\\') {
      oclaw_buf_push(b, '\\');
      oclaw_buf_push(b, (char)c);
    } else if (c < 0x20) {
      oclaw_buf_cstr(b, "\\u00");
      oclaw_buf_push(b, hex[c >> 4]);
      oclaw_buf_push(b, hex[c & 15]);
    } else {
      oclaw_buf_push(b, (char)c);
    }
  }
  oclaw_buf_push(b, '"');
}

static inline void oclaw_output_buf(const oclaw_buf *b) { oclaw_output(b->ptr, b->len); }

/* ---- reading JSON input ---------------------------------------------------------------- */
static inline oclaw_size oclaw_json_skip_ws(oclaw_str s, oclaw_size i) {
  while (i < s.len && (s.ptr[i] == ' ' || s.ptr[i] == '\n' || s.ptr[i] == '\r' || s.ptr[i] == '\t')) i++;
  return i;
}

static inline int oclaw_hexval(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

/* Decodes the JSON string literal starting at s.ptr[i] (the opening quote) into `out` as UTF-8.
 * Answers the index after the closing quote, or 0 when it is not a valid string. */
static inline oclaw_size oclaw_json_decode_string(oclaw_str s, oclaw_size i, oclaw_buf *out) {
  if (i >= s.len || s.ptr[i] != '"') return 0;
  i++;
  while (i < s.len) {
    char c = s.ptr[i++];
    if (c == '"') return i;
    if (c != '\\') {
      oclaw_buf_push(out, c);
      continue;
    }
    if (i >= s.len) return 0;
    char e = s.ptr[i++];
    switch (e) {
      case 'n': oclaw_buf_push(out, '\n'); break;
      case 't': oclaw_buf_push(out, '\t'); break;
      case 'r': oclaw_buf_push(out, '\r'); break;
      case 'b': oclaw_buf_push(out, '\b'); break;
      case 'f': oclaw_buf_push(out, '\f'); break;
      case 'u': {
        if (i + 4 > s.len) return 0;
        unsigned cp = 0;
        for (int k = 0; k < 4; k++) {
          int h = oclaw_hexval(s.ptr[i + k]);
          if (h < 0) return 0;
          cp = cp * 16 + (unsigned)h;
        }
        i += 4;
        if (cp >= 0xD800 && cp <= 0xDBFF && i + 6 <= s.len && s.ptr[i] == '\\' && s.ptr[i + 1] == 'u') {
          unsigned lo = 0;
          for (int k = 0; k < 4; k++) lo = lo * 16 + (unsigned)oclaw_hexval(s.ptr[i + 2 + k]);
          if (lo >= 0xDC00 && lo <= 0xDFFF) {
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            i += 6;
          }
        }
        if (cp < 0x80) {
          oclaw_buf_push(out, (char)cp);
        } else if (cp < 0x800) {
          oclaw_buf_push(out, (char)(0xC0 | (cp >> 6)));
          oclaw_buf_push(out, (char)(0x80 | (cp & 63)));
        } else if (cp < 0x10000) {
          oclaw_buf_push(out, (char)(0xE0 | (cp >> 12)));
          oclaw_buf_push(out, (char)(0x80 | ((cp >> 6) & 63)));
          oclaw_buf_push(out, (char)(0x80 | (cp & 63)));
        } else {
          oclaw_buf_push(out, (char)(0xF0 | (cp >> 18)));
          oclaw_buf_push(out, (char)(0x80 | ((cp >> 12) & 63)));
          oclaw_buf_push(out, (char)(0x80 | ((cp >> 6) & 63)));
          oclaw_buf_push(out, (char)(0x80 | (cp & 63)));
        }
        break;
      }
      default: oclaw_buf_push(out, e); break; /* \" \\ \/ */
    }
  }
  return 0;
}

/* Skips one JSON value starting at i (after whitespace); answers the index after it, 0 on error. */
static inline oclaw_size oclaw_json_skip_value(oclaw_str s, oclaw_size i) {
  i = oclaw_json_skip_ws(s, i);
  if (i >= s.len) return 0;
  if (s.ptr[i] == '"') {
    i++;
    while (i < s.len && s.ptr[i] != '"') i += (s.ptr[i] == '\\') ? 2 : 1;
    return i < s.len ? i + 1 : 0;
  }
  if (s.ptr[i] == '{' || s.ptr[i] == '[') {
    int depth = 0;
    while (i < s.len) {
      char c = s.ptr[i];
      if (c == '"') {
        i = oclaw_json_skip_value(s, i);
        if (!i) return 0;
        continue;
      }
      if (c == '{' || c == '[') depth++;
      if (c == '}' || c == ']') {
        depth--;
        if (depth == 0) return i + 1;
      }
      i++;
    }
    return 0;
  }
  while (i < s.len && s.ptr[i] != ',' && s.ptr[i] != '}' && s.ptr[i] != ']' && s.ptr[i] != ' ' && s.ptr[i] != '\n') i++;
  return i;
}

/* Finds top-level field `key` of the JSON object `s`; answers the index of its value (after
 * whitespace) or 0 when the field is missing or `s` is not an object. */
static inline oclaw_size oclaw_json_field(oclaw_str s, const char *key) {
  oclaw_size i = oclaw_json_skip_ws(s, 0);
  if (i >= s.len || s.ptr[i] != '{') return 0;
  i++;
  for (;;) {
    i = oclaw_json_skip_ws(s, i);
    if (i >= s.len || s.ptr[i] == '}') return 0;
    oclaw_buf name = {0, 0, 0};
    i = oclaw_json_decode_string(s, i, &name);
    if (!i) return 0;
    i = oclaw_json_skip_ws(s, i);
    if (i >= s.len || s.ptr[i] != ':') return 0;
    i = oclaw_json_skip_ws(s, i + 1);
    oclaw_str n = {name.ptr, name.len};
    if (oclaw_str_eq(n, key)) return i;
    i = oclaw_json_skip_value(s, i);
    if (!i) return 0;
    i = oclaw_json_skip_ws(s, i);
    if (i < s.len && s.ptr[i] == ',') i++;
  }
}

/* The string field `key` of the object `s`, decoded; answers 1 when found. */
static inline int oclaw_json_string_field(oclaw_str s, const char *key, oclaw_str *out) {
  oclaw_size at = oclaw_json_field(s, key);
  if (!at) return 0;
  oclaw_buf b = {0, 0, 0};
  if (!oclaw_json_decode_string(s, at, &b)) return 0;
  out->ptr = b.ptr;
  out->len = b.len;
  return 1;
}

/* A host answer `(ptr << 32) | len` as a string (empty for -1). */
static inline oclaw_str oclaw_host_bytes(long long packed) {
  oclaw_str r = {0, 0};
  if (packed < 0) return r;
  r.ptr = (const char *)(unsigned long)((unsigned long long)packed >> 32);
  r.len = (oclaw_size)(packed & 0xffffffff);
  return r;
}

/* Fails the call with `message`. */
static inline int oclaw_fail(const char *message) {
  oclaw_output_cstr(message);
  return OCLAW_FAIL;
}

#endif
