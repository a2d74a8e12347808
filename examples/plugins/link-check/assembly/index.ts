// link-check: an OpenClaw plugin in AssemblyScript (ABI 1).
//   status {url} -> {url, status, ok}   one GET through the node's HTTP client (needs http, log)

@external("oclaw", "output")
declare function host_output(ptr: usize, len: i32): void;
@external("oclaw", "log")
declare function host_log(level: i32, ptr: usize, len: i32): void;
@external("oclaw", "http_fetch")
declare function host_http_fetch(ptr: usize, len: i32): i64;

const OK: i32 = 0;
const FAIL: i32 = 1;
const RETRY: i32 = 2;

// Every call runs in a fresh instance: the stub runtime's bump allocator is all we need.
export function oclaw_abi_v1(): void {}

export function oclaw_alloc(size: i32): usize {
  return heap.alloc(<usize>size);
}

// Traps with the message (the node reports a trapped plugin with OC-4025).
export function abort(message: string | null, file: string | null, line: u32, column: u32): void {
  unreachable();
}

function output(s: string): void {
  const bytes = String.UTF8.encode(s);
  host_output(changetype<usize>(bytes), bytes.byteLength);
}

function log(s: string): void {
  const bytes = String.UTF8.encode(s);
  host_log(2, changetype<usize>(bytes), bytes.byteLength);
}

function quote(s: string): string {
  let out = '"';
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c == 0x22) out += '\\"';
    else if (c == 0x5c) out += "\\\\";
    else if (c < 0x20) out += "\\u00" + (c < 16 ? "0" : "") + c.toString(16);
    else out += String.fromCharCode(c);
  }
  return out + '"';
}

// The string value of top-level field `key` (escapes other than \" and \\ kept as written).
function stringField(json: string, key: string): string | null {
  const at = json.indexOf(quote(key));
  if (at < 0) return null;
  let i = json.indexOf(":", at + key.length + 2);
  if (i < 0) return null;
  i++;
  while (i < json.length && json.charCodeAt(i) == 0x20) i++;
  if (i >= json.length || json.charCodeAt(i) != 0x22) return null;
  i++;
  let out = "";
  while (i < json.length) {
    const c = json.charCodeAt(i);
    if (c == 0x22) return out;
    if (c == 0x5c && i + 1 < json.length) {
      i++;
      out += String.fromCharCode(json.charCodeAt(i));
    } else {
      out += String.fromCharCode(c);
    }
    i++;
  }
  return null;
}

// The integer value of top-level field `key`, or -1.
function intField(json: string, key: string): i32 {
  const at = json.indexOf(quote(key) + ":");
  if (at < 0) return -1;
  let i = at + key.length + 3;
  let n: i32 = 0;
  let digits = 0;
  while (i < json.length) {
    const c = json.charCodeAt(i);
    if (c < 0x30 || c > 0x39) break;
    n = n * 10 + (c - 0x30);
    digits++;
    i++;
  }
  return digits > 0 ? n : -1;
}

function status(input: string): i32 {
  const url = stringField(input, "url");
  if (url == null) {
    output("status: input needs a string field `url`");
    return FAIL;
  }
  const request = String.UTF8.encode('{"method":"GET","url":' + quote(url) + ',"timeout":"5s"}');
  const packed = host_http_fetch(changetype<usize>(request), request.byteLength);
  if (packed < 0) {
    output("status: no answer from the host");
    return RETRY;
  }
  const answer = String.UTF8.decodeUnsafe(<usize>(packed >>> 32), <usize>(packed & 0xffffffff));
  if (answer.startsWith('{"error"')) {
    output("status: " + url + ": " + answer);
    return RETRY;
  }
  const code = intField(answer, "status");
  const ok = code >= 200 && code < 400;
  log("checked " + url + ": " + code.toString());
  output('{"url":' + quote(url) + ',"status":' + code.toString() + ',"ok":' + (ok ? "true" : "false") + "}");
  return OK;
}

export function oclaw_call(namePtr: usize, nameLen: i32, inputPtr: usize, inputLen: i32): i32 {
  const name = String.UTF8.decodeUnsafe(namePtr, <usize>nameLen);
  const input = String.UTF8.decodeUnsafe(inputPtr, <usize>inputLen);
  if (name == "status") return status(input);
  output("link-check: unknown skill " + name);
  return FAIL;
}
