/* text-tools: an OpenClaw plugin in C (ABI 1).
 *   slugify    {text}  -> {slug}            lowercase, ASCII runs of other characters become "-"
 *   word_count {text}  -> {words, chars}    chars counts Unicode code points
 *   count      {key}   -> {key, count}      a counter in the bot's key-value store (needs kv, log)
 */
#include "oclaw_plugin.h"

static int slugify(oclaw_str input) {
  oclaw_str text;
  if (!oclaw_json_string_field(input, "text", &text)) return oclaw_fail("slugify: input needs a string field `text`");
  oclaw_buf slug = {0, 0, 0};
  int dash = 0;
  for (oclaw_size i = 0; i < text.len; i++) {
    unsigned char c = (unsigned char)text.ptr[i];
    if (c >= 'A' && c <= 'Z') c = (unsigned char)(c - 'A' + 'a');
    int keep = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c >= 0x80;
    if (keep) {
      if (dash && slug.len > 0) oclaw_buf_push(&slug, '-');
      dash = 0;
      oclaw_buf_push(&slug, (char)c);
    } else {
      dash = 1;
    }
  }
  oclaw_buf out = {0, 0, 0};
  oclaw_buf_cstr(&out, "{\"slug\":");
  oclaw_str s = {slug.ptr, slug.len};
  oclaw_buf_json_string(&out, s);
  oclaw_buf_push(&out, '}');
  oclaw_output_buf(&out);
  return OCLAW_OK;
}

static int word_count(oclaw_str input) {
  oclaw_str text;
  if (!oclaw_json_string_field(input, "text", &text)) return oclaw_fail("word_count: input needs a string field `text`");
  unsigned long long words = 0, chars = 0;
  int in_word = 0;
  for (oclaw_size i = 0; i < text.len; i++) {
    unsigned char c = (unsigned char)text.ptr[i];
    if ((c & 0xC0) != 0x80) chars++;
    int space = c == ' ' || c == '\n' || c == '\t' || c == '\r';
    if (!space && !in_word) words++;
    in_word = !space;
  }
  oclaw_buf out = {0, 0, 0};
  oclaw_buf_cstr(&out, "{\"words\":");
  oclaw_buf_uint(&out, words);
  oclaw_buf_cstr(&out, ",\"chars\":");
  oclaw_buf_uint(&out, chars);
  oclaw_buf_push(&out, '}');
  oclaw_output_buf(&out);
  return OCLAW_OK;
}

static int count(oclaw_str input) {
  oclaw_str key;
  if (!oclaw_json_string_field(input, "key", &key)) return oclaw_fail("count: input needs a string field `key`");
  oclaw_buf k = {0, 0, 0};
  oclaw_buf_cstr(&k, "counter:");
  oclaw_buf_raw(&k, key.ptr, key.len);
  oclaw_str stored = oclaw_host_bytes(oclaw_kv_get(k.ptr, k.len));
  unsigned long long n = 0;
  for (oclaw_size i = 0; i < stored.len && stored.ptr[i] >= '0' && stored.ptr[i] <= '9'; i++) n = n * 10 + (unsigned long long)(stored.ptr[i] - '0');
  n++;
  oclaw_buf v = {0, 0, 0};
  oclaw_buf_uint(&v, n);
  if (oclaw_kv_set(k.ptr, k.len, v.ptr, v.len) != 0) return oclaw_fail("count: the store refused the counter");
  oclaw_buf line = {0, 0, 0};
  oclaw_buf_cstr(&line, "counted ");
  oclaw_buf_raw(&line, key.ptr, key.len);
  oclaw_buf_cstr(&line, " = ");
  oclaw_buf_raw(&line, v.ptr, v.len);
  oclaw_log(OCLAW_LOG_INFO, line.ptr, line.len);
  oclaw_buf out = {0, 0, 0};
  oclaw_buf_cstr(&out, "{\"key\":");
  oclaw_buf_json_string(&out, key);
  oclaw_buf_cstr(&out, ",\"count\":");
  oclaw_buf_raw(&out, v.ptr, v.len);
  oclaw_buf_push(&out, '}');
  oclaw_output_buf(&out);
  return OCLAW_OK;
}

int oclaw_handle(oclaw_str skill, oclaw_str input) {
  if (oclaw_str_eq(skill, "slugify")) return slugify(input);
  if (oclaw_str_eq(skill, "word_count")) return word_count(input);
  if (oclaw_str_eq(skill, "count")) return count(input);
  return oclaw_fail("text-tools: unknown skill");
}
