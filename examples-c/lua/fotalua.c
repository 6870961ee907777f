/*
 * libfota and libfota2 for Lua 5.3 and 5.4: LuatOS's two FOTA libraries,
 * backed by fota through fota.h only.
 *
 *   libfota.request(cbFnc, ota_url, storge_location, len, param1, ota_port,
 *                   libfota_timeout, server_cert, client_cert, client_key,
 *                   client_password, show_otaurl)
 *   libfota2.request(cbFnc, opts)
 *
 * Both return at once. The download runs on a worker task
 * (fotalua_port_spawn); cbFnc(result, fota_code, platform_code) is called
 * later on the Lua task, by poll() (the event loop) or fotalua_deliver()
 * (a firmware's message handler), never on the worker. `result` is libfota's
 * 0-5 (fota_result_libfota), `fota_code` fota's detailed code, and
 * `platform_code` the platform's refusal code (0 if none).
 *
 * One request at a time, as fota allows: a request made while one runs is
 * answered by cbFnc(4, FOTA_ERR_BUSY, 0), delivered the same way.
 *
 * Memory: no C allocation. The options of the running request point into
 * Lua strings kept alive by a registry reference (Lua never moves objects)
 * until its callback is delivered; the request record is one static struct.
 *
 * Other functions of both modules:
 *   poll([ms])     delivers finished results; waits up to ms (default 0)
 *                  for one when none is ready. Returns delivered, pending.
 *   abort()        fota_abort(): the running request ends with code 12 (4).
 *   progress()     a table: state, bytes_written, total, retries,
 *                  http_status, platform_code, verify_reason
 *                  (fota_get_progress) and pending (results not yet
 *                  delivered, the running one too).
 *   result_str(n)  fota_result_str(n), e.g. "FOTA_ERR_BUSY".
 */
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "lauxlib.h"
#include "lua.h"

#include "fota.h"
#include "fotalua_port.h"

/* libfota's default overall timeout in its current sources (its
   documentation says 30000); libfota2 leaves fota's default, 300000. */
#define LIBFOTA_TIMEOUT_MS 180000u

enum { IDLE, RUNNING, DONE };

/* The one request fota runs at a time. The Lua task moves IDLE -> RUNNING
   (request) and DONE -> IDLE (delivery); the worker RUNNING -> DONE. */
static struct {
    atomic_int state;
    fota_opts_t opts;   /* strings point into the anchored Lua strings */
    lua_State *owner;   /* main thread of the Lua state that made it */
    int cb_ref;         /* registry: cbFnc */
    int anchor_ref;     /* registry: table holding the strings of opts */
    int32_t result;     /* written by the worker before state = DONE */
    int32_t platform_code;
} req = { .state = IDLE, .cb_ref = LUA_NOREF, .anchor_ref = LUA_NOREF };

/* Registry keys: the queue of results not from fota (busy), as
   {cbFnc, result, fota_code, platform_code}; the finaliser sentinel. */
static const char PENDING_KEY = 'p';
static const char SENTINEL_KEY = 's';

static lua_State *main_thread(lua_State *L)
{
    lua_rawgeti(L, LUA_REGISTRYINDEX, LUA_RIDX_MAINTHREAD);
    lua_State *m = lua_tothread(L, -1);
    lua_pop(L, 1);
    return m;
}

/* ---- the worker ------------------------------------------------------------ */

static void worker(void *arg)
{
    (void)arg;
    int32_t code = fota_request(NULL, NULL, &req.opts);
    fota_progress_t p;
    fota_get_progress(&p);
    req.result = code;
    req.platform_code = p.platform_code;
    atomic_store(&req.state, DONE);
    fotalua_port_notify();
}

/* ---- building the options ------------------------------------------------- */

/* Options being read from Lua: nothing is kept until start() succeeds, so a
   Lua error while reading leaves no state behind. */
typedef struct {
    lua_State *L;
    int anchor; /* stack index of the table that keeps the strings alive */
    int n;      /* strings in it */
    fota_opts_t opts;
} build_t;

/* Anchors the string on top of the stack (popping it) and returns its bytes.
   `name` is for messages; `cstr`: it becomes a C string, so a NUL inside
   would silently cut it: an error instead. */
static const char *anchor_top(build_t *b, const char *name, bool cstr, size_t *len)
{
    size_t n = 0;
    const char *s = lua_tolstring(b->L, -1, &n);
    if (cstr && strlen(s) != n) {
        luaL_error(b->L, "%s: contains a NUL byte", name);
    }
    lua_rawseti(b->L, b->anchor, ++b->n);
    if (len != NULL) {
        *len = n;
    }
    return s;
}

/* The value on top of the stack as a string (nil: NULL); pops it. */
static const char *take_str(build_t *b, const char *name, bool cstr, size_t *len)
{
    int t = lua_type(b->L, -1);
    if (t == LUA_TNIL) {
        lua_pop(b->L, 1);
        return NULL;
    }
    if (t != LUA_TSTRING) {
        luaL_error(b->L, "%s: string expected, got %s", name, luaL_typename(b->L, -1));
    }
    return anchor_top(b, name, cstr, len);
}

/* The value on top of the stack as an integer in [lo, hi]; nil: false and
   *out untouched. Pops it. */
static bool take_int(build_t *b, const char *name, lua_Integer lo, lua_Integer hi, lua_Integer *out)
{
    lua_State *L = b->L;
    if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        return false;
    }
    int ok = 0;
    lua_Integer v = lua_tointegerx(L, -1, &ok);
    if (lua_type(L, -1) != LUA_TNUMBER || !ok || v < lo || v > hi) {
        luaL_error(L, "%s: integer %I..%I expected, got %s", name, lo, hi,
                   lua_type(L, -1) == LUA_TNUMBER ? lua_tostring(L, -1) : luaL_typename(L, -1));
    }
    lua_pop(L, 1);
    *out = v;
    return true;
}

static void take_u32(build_t *b, const char *name, uint32_t *out)
{
    lua_Integer v;
    if (take_int(b, name, 0, UINT32_MAX, &v)) {
        *out = (uint32_t)v;
    }
}

/* The value on top of the stack as a boolean; nil: *out untouched. Pops it. */
static void take_bool(build_t *b, const char *name, bool *out)
{
    int t = lua_type(b->L, -1);
    if (t != LUA_TNIL && t != LUA_TBOOLEAN) {
        luaL_error(b->L, "%s: boolean expected, got %s", name, luaL_typename(b->L, -1));
    }
    if (t == LUA_TBOOLEAN) {
        *out = lua_toboolean(b->L, -1);
    }
    lua_pop(b->L, 1);
}

/* libfota's storge_location: a number is a flash address, a string a file path. */
static void take_storage(build_t *b, const char *name)
{
    if (lua_type(b->L, -1) == LUA_TSTRING) {
        b->opts.storage.path = anchor_top(b, name, true, NULL);
        return;
    }
    take_u32(b, name, &b->opts.storage.address);
}

/* libfota's param1 (e.g. the SPI flash device): a userdata, passed to the
   flash hooks as storage.param1. */
static void take_param1(build_t *b, const char *name)
{
    int t = lua_type(b->L, -1);
    if (t != LUA_TNIL && t != LUA_TUSERDATA && t != LUA_TLIGHTUSERDATA) {
        luaL_error(b->L, "%s: userdata expected, got %s", name, luaL_typename(b->L, -1));
    }
    b->opts.storage.param1 = lua_touserdata(b->L, -1);
    lua_rawseti(b->L, b->anchor, ++b->n); /* a full userdata must outlive the request */
}

/* libfota2's headers table {Name = value, ...} as fota's "Name: value"
   lines separated by CRLF. A CR, LF or NUL in a name or value would
   smuggle in another header line: a Lua error. fota checks the rest
   (e.g. an empty name: result 4, fota 14). */
static const char *take_headers(build_t *b)
{
    lua_State *L = b->L;
    int t = lua_type(L, -1);
    if (t == LUA_TNIL) {
        lua_pop(L, 1);
        return NULL;
    }
    if (t != LUA_TTABLE) {
        luaL_error(L, "opts.headers: table expected, got %s", luaL_typename(L, -1));
    }
    int tbl = lua_gettop(L);
    lua_pushliteral(L, ""); /* the lines so far */
    lua_pushnil(L);
    while (lua_next(L, tbl) != 0) {
        if (lua_type(L, -2) != LUA_TSTRING
            || (lua_type(L, -1) != LUA_TSTRING && lua_type(L, -1) != LUA_TNUMBER)) {
            luaL_error(L, "opts.headers: string keys and string values expected");
        }
        size_t klen;
        size_t vlen;
        const char *k = lua_tolstring(L, -2, &klen);
        const char *v = lua_tolstring(L, -1, &vlen); /* converts the value, never the key */
        if (strcspn(k, "\r\n") != klen || strcspn(v, "\r\n") != vlen) {
            luaL_error(L, "opts.headers: CR, LF or NUL in header %s", k);
        }
        const char *lines = lua_tostring(L, tbl + 1);
        lua_pushfstring(L, "%s%s%s: %s", lines, *lines != '\0' ? "\r\n" : "", k, v);
        lua_replace(L, tbl + 1);
        lua_pop(L, 1);
    }
    lua_remove(L, tbl);
    return anchor_top(b, "opts.headers", true, NULL);
}

/* opts.image_sha256: 32 bytes, or 64 hex digits (decoded and anchored). */
static const uint8_t *take_sha256(build_t *b)
{
    size_t n = 0;
    const char *s = take_str(b, "opts.image_sha256", false, &n);
    if (s == NULL || n == 32) {
        return (const uint8_t *)s;
    }
    uint8_t raw[32];
    for (size_t i = 0; n == 64 && i < 64; i++) {
        const char *hex = "0123456789abcdef0123456789ABCDEF";
        const char *d = s[i] != '\0' ? strchr(hex, s[i]) : NULL;
        if (d == NULL) {
            n = 0;
            break;
        }
        raw[i / 2] = (uint8_t)((i % 2 == 0 ? 0 : raw[i / 2] << 4) | ((d - hex) & 15));
    }
    if (n != 64) {
        luaL_error(b->L, "opts.image_sha256: 32 bytes or 64 hex digits expected");
    }
    lua_pushlstring(b->L, (const char *)raw, sizeof raw);
    return (const uint8_t *)anchor_top(b, "opts.image_sha256", false, NULL);
}

/* ---- the platform parameters, composed as libfota/libfota2 do -------------- */

/* Calls LIB.FN() if the global table LIB has that function; leaves its first
   result (or nil) on the stack. */
static int call_global(lua_State *L, const char *lib, const char *fn)
{
    int top = lua_gettop(L);
    if (lua_getglobal(L, lib) == LUA_TTABLE && lua_getfield(L, -1, fn) == LUA_TFUNCTION) {
        lua_call(L, 0, 1);
    } else {
        lua_pushnil(L);
    }
    lua_replace(L, top + 1);
    lua_settop(L, top + 1);
    return lua_type(L, -1);
}

/* A global that is a string, anchored; anything else: NULL. */
static const char *global_str(build_t *b, const char *name)
{
    if (lua_getglobal(b->L, name) != LUA_TSTRING) {
        lua_pop(b->L, 1);
        return NULL;
    }
    return anchor_top(b, name, true, NULL);
}

/* The version sent to the platform, as libfota composes it from
   _G.VERSION = "x.y.z": the core firmware number of rtos.version() ("V2035"
   -> "2035"), then x and z (y is dropped), with libfota's own pattern. No
   rtos.version(): "x.y.z". A VERSION that does not match gives NULL, and
   fota answers 5 for the platform (libfota2 raised a Lua error). */
static const char *composed_version(build_t *b)
{
    lua_State *L = b->L;
    if (lua_getglobal(L, "VERSION") != LUA_TSTRING) {
        lua_pop(L, 1);
        return NULL;
    }
    int version = lua_gettop(L);
    luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
    if (lua_getfield(L, -1, "string") != LUA_TTABLE || lua_getfield(L, -1, "match") != LUA_TFUNCTION) {
        lua_settop(L, version - 1);
        return NULL;
    }
    lua_pushvalue(L, version);
    lua_pushliteral(L, "(%d+).(%d+).(%d+)");
    lua_call(L, 2, 3); /* x, y, z or nil */
    if (lua_isnil(L, -3)) {
        lua_settop(L, version - 1);
        return NULL;
    }
    int x = lua_gettop(L) - 2;
    if (call_global(L, "rtos", "version") == LUA_TSTRING && lua_rawlen(L, -1) > 1) {
        lua_pushstring(L, lua_tostring(L, -1) + 1); /* "V2035" -> "2035" */
        lua_pushliteral(L, ".");
        lua_pushvalue(L, x);
        lua_pushliteral(L, ".");
        lua_pushvalue(L, x + 2);
        lua_concat(L, 5);
    } else {
        lua_pushvalue(L, x);
        lua_pushliteral(L, ".");
        lua_pushvalue(L, x + 1);
        lua_pushliteral(L, ".");
        lua_pushvalue(L, x + 2);
        lua_concat(L, 5);
    }
    lua_replace(L, version);
    lua_settop(L, version);
    return anchor_top(b, "version", true, NULL);
}

/* _G.PROJECT .. "_LuatOS-SoC_" .. rtos.bsp() cut at the first '-'; NULL
   when either is missing. */
static const char *composed_firmware_name(build_t *b)
{
    lua_State *L = b->L;
    int top = lua_gettop(L);
    if (lua_getglobal(L, "PROJECT") != LUA_TSTRING || call_global(L, "rtos", "bsp") != LUA_TSTRING) {
        lua_settop(L, top);
        return NULL;
    }
    const char *bsp = lua_tostring(L, -1);
    const char *dash = strchr(bsp, '-');
    lua_pushliteral(L, "_LuatOS-SoC_");
    lua_pushlstring(L, bsp, dash != NULL ? (size_t)(dash - bsp) : strlen(bsp));
    lua_remove(L, -3);
    lua_concat(L, 3);
    return anchor_top(b, "firmware_name", true, NULL);
}

/* The device id: mobile.imei() (cellular), else wlan.getMac() (Wi-Fi),
   else mcu.unique_id() in hex; the first that gives a non-empty string. */
static void composed_device_id(build_t *b)
{
    lua_State *L = b->L;
    if (call_global(L, "mobile", "imei") == LUA_TSTRING && lua_rawlen(L, -1) > 0) {
        b->opts.imei = anchor_top(b, "mobile.imei()", true, NULL);
        return;
    }
    lua_pop(L, 1);
    if (call_global(L, "wlan", "getMac") == LUA_TSTRING && lua_rawlen(L, -1) > 0) {
        b->opts.mac = anchor_top(b, "wlan.getMac()", true, NULL);
        return;
    }
    lua_pop(L, 1);
    if (call_global(L, "mcu", "unique_id") == LUA_TSTRING && lua_rawlen(L, -1) > 0) {
        size_t n = 0;
        const unsigned char *id = (const unsigned char *)lua_tolstring(L, -1, &n);
        luaL_Buffer buf;
        luaL_buffinit(L, &buf);
        for (size_t i = 0; i < n; i++) {
            luaL_addchar(&buf, "0123456789ABCDEF"[id[i] >> 4]);
            luaL_addchar(&buf, "0123456789ABCDEF"[id[i] & 15]);
        }
        luaL_pushresult(&buf);
        lua_remove(L, -2);
        b->opts.uid = anchor_top(b, "mcu.unique_id()", true, NULL);
        return;
    }
    lua_pop(L, 1);
}

/* ---- starting and delivering ----------------------------------------------- */

/* Queues cbFnc(fota_result_libfota(code), code, platform) for delivery. */
static void queue_result(lua_State *L, int cb, int32_t code, int32_t platform)
{
    lua_rawgetp(L, LUA_REGISTRYINDEX, &PENDING_KEY);
    lua_createtable(L, 4, 0);
    lua_pushvalue(L, cb);
    lua_rawseti(L, -2, 1);
    lua_pushinteger(L, fota_result_libfota(code));
    lua_rawseti(L, -2, 2);
    lua_pushinteger(L, code);
    lua_rawseti(L, -2, 3);
    lua_pushinteger(L, platform);
    lua_rawseti(L, -2, 4);
    lua_rawseti(L, -2, (lua_Integer)lua_rawlen(L, -2) + 1);
    lua_pop(L, 1);
}

/* Starts the request built in `b` (callback at stack index `cb`), or queues
   the busy result. */
static int start(build_t *b, int cb)
{
    lua_State *L = b->L;
    if (atomic_load(&req.state) != IDLE) {
        queue_result(L, cb, FOTA_ERR_BUSY, 0);
        return 0;
    }
    req.opts = b->opts;
    req.owner = main_thread(L);
    lua_pushvalue(L, cb);
    req.cb_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    lua_pushvalue(L, b->anchor);
    req.anchor_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    atomic_store(&req.state, RUNNING);
    if (fotalua_port_spawn(worker, NULL) != 0) {
        luaL_unref(L, LUA_REGISTRYINDEX, req.cb_ref);
        luaL_unref(L, LUA_REGISTRYINDEX, req.anchor_ref);
        atomic_store(&req.state, IDLE);
        return luaL_error(L, "libfota: cannot start a worker task");
    }
    return 0;
}

/* Takes the finished request of this Lua state, if any: pushes its callback
   and leaves the record idle. Returns false when there is none. */
static bool take_done(lua_State *L, int32_t *code, int32_t *platform)
{
    if (atomic_load(&req.state) != DONE || req.owner != main_thread(L)) {
        return false;
    }
    lua_rawgeti(L, LUA_REGISTRYINDEX, req.cb_ref);
    luaL_unref(L, LUA_REGISTRYINDEX, req.cb_ref);
    luaL_unref(L, LUA_REGISTRYINDEX, req.anchor_ref);
    req.cb_ref = req.anchor_ref = LUA_NOREF;
    *code = req.result;
    *platform = req.platform_code;
    atomic_store(&req.state, IDLE);
    return true;
}

static void call_cb(lua_State *L, int32_t code, int32_t platform)
{
    lua_pushinteger(L, fota_result_libfota(code));
    lua_pushinteger(L, code);
    lua_pushinteger(L, platform);
    lua_call(L, 3, 0);
}

int fotalua_deliver(lua_State *L)
{
    int delivered = 0;
    /* Queued results, as many as there were on entry (a callback may queue
       more: the next poll delivers those). Each leaves the queue before its
       callback runs, so a callback that raises an error loses nothing else. */
    lua_rawgetp(L, LUA_REGISTRYINDEX, &PENDING_KEY);
    int queue = lua_gettop(L);
    for (lua_Unsigned n = lua_rawlen(L, queue); n > 0; n--) {
        lua_rawgeti(L, queue, 1);
        lua_Unsigned len = lua_rawlen(L, queue);
        for (lua_Unsigned i = 1; i < len; i++) {
            lua_rawgeti(L, queue, (lua_Integer)i + 1);
            lua_rawseti(L, queue, (lua_Integer)i);
        }
        lua_pushnil(L);
        lua_rawseti(L, queue, (lua_Integer)len);
        for (int i = 1; i <= 4; i++) {
            lua_rawgeti(L, -i, i);
        }
        lua_call(L, 3, 0);
        lua_pop(L, 1);
        delivered++;
    }
    lua_pop(L, 1);
    int32_t code;
    int32_t platform;
    if (take_done(L, &code, &platform)) {
        call_cb(L, code, platform);
        delivered++;
    }
    return delivered;
}

/* Results not yet delivered to this state, the running request included. */
static lua_Integer pending(lua_State *L)
{
    lua_rawgetp(L, LUA_REGISTRYINDEX, &PENDING_KEY);
    lua_Integer n = (lua_Integer)lua_rawlen(L, -1);
    lua_pop(L, 1);
    if (atomic_load(&req.state) != IDLE && req.owner == main_thread(L)) {
        n++;
    }
    return n;
}

/* ---- the Lua functions ----------------------------------------------------- */

static build_t build_begin(lua_State *L)
{
    build_t b = { .L = L, .n = 0 };
    fota_opts_init(&b.opts);
    lua_newtable(L);
    b.anchor = lua_gettop(L);
    return b;
}

/* libfota.request(cbFnc, ota_url, storge_location, len, param1, ota_port,
   libfota_timeout, server_cert, client_cert, client_key, client_password,
   show_otaurl) */
static int l_libfota_request(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TFUNCTION);
    lua_settop(L, 12);
    build_t b = build_begin(L);
    fota_opts_t *o = &b.opts;
    lua_Integer port = 0;
#define ARG(i) lua_pushvalue(L, (i))
    ARG(2);
    o->url = take_str(&b, "ota_url", true, NULL);
    ARG(3);
    take_storage(&b, "storge_location");
    ARG(4);
    take_u32(&b, "len", &o->storage.max_len);
    ARG(5);
    take_param1(&b, "param1");
    ARG(6);
    if (take_int(&b, "ota_port", 1, UINT16_MAX, &port)) {
        o->port = (uint16_t)port;
    }
    o->timeout_ms = LIBFOTA_TIMEOUT_MS;
    ARG(7);
    take_u32(&b, "libfota_timeout", &o->timeout_ms);
    ARG(8);
    o->server_cert = (const uint8_t *)take_str(&b, "server_cert", false, &o->server_cert_len);
    ARG(9);
    o->client_cert = (const uint8_t *)take_str(&b, "client_cert", false, &o->client_cert_len);
    ARG(10);
    o->client_key = (const uint8_t *)take_str(&b, "client_key", false, &o->client_key_len);
    ARG(11);
    o->client_password = take_str(&b, "client_password", true, NULL);
    ARG(12);
    take_bool(&b, "show_otaurl", &o->show_url);
#undef ARG
    /* libfota uses a custom URL verbatim; only the platform gets parameters. */
    if (o->url == NULL) {
        o->project_key = global_str(&b, "PRODUCT_KEY");
        o->version = composed_version(&b);
        o->firmware_name = composed_firmware_name(&b);
        composed_device_id(&b);
    }
    return start(&b, 1);
}

/* opts[key] pushed (nil when opts is absent). */
static void field(build_t *b, int opts, const char *key)
{
    if (opts == 0) {
        lua_pushnil(b->L);
    } else {
        lua_getfield(b->L, opts, key);
    }
}

/* libfota2.request(cbFnc, opts) */
static int l_libfota2_request(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TFUNCTION);
    int opts = lua_isnoneornil(L, 2) ? 0 : 2;
    if (opts != 0) {
        luaL_checktype(L, 2, LUA_TTABLE);
    }
    lua_settop(L, 2);
    build_t b = build_begin(L);
    fota_opts_t *o = &b.opts;
    lua_Integer v = 0;
    static const struct {
        const char *key;
        size_t offset;
    } strings[] = {
        { "url", offsetof(fota_opts_t, url) },
        { "project_key", offsetof(fota_opts_t, project_key) },
        { "version", offsetof(fota_opts_t, version) },
        { "firmware_name", offsetof(fota_opts_t, firmware_name) },
        { "imei", offsetof(fota_opts_t, imei) },
        { "client_password", offsetof(fota_opts_t, client_password) },
        { "method", offsetof(fota_opts_t, method) },
    };
    for (size_t i = 0; i < sizeof strings / sizeof strings[0]; i++) {
        char name[40];
        snprintf(name, sizeof name, "opts.%s", strings[i].key);
        field(&b, opts, strings[i].key);
        *(const char **)((char *)o + strings[i].offset) = take_str(&b, name, true, NULL);
    }
    field(&b, opts, "server_cert");
    o->server_cert = (const uint8_t *)take_str(&b, "opts.server_cert", false, &o->server_cert_len);
    field(&b, opts, "client_cert");
    o->client_cert = (const uint8_t *)take_str(&b, "opts.client_cert", false, &o->client_cert_len);
    field(&b, opts, "client_key");
    o->client_key = (const uint8_t *)take_str(&b, "opts.client_key", false, &o->client_key_len);
    field(&b, opts, "body");
    o->body = (const uint8_t *)take_str(&b, "opts.body", false, &o->body_len);
    field(&b, opts, "headers");
    o->headers = take_headers(&b);
    field(&b, opts, "timeout");
    take_u32(&b, "opts.timeout", &o->timeout_ms);
    /* Beyond libfota2: what fota adds. */
    field(&b, opts, "storage");
    take_storage(&b, "opts.storage");
    field(&b, opts, "max_len");
    take_u32(&b, "opts.max_len", &o->storage.max_len);
    field(&b, opts, "param1");
    take_param1(&b, "opts.param1");
    field(&b, opts, "port");
    if (take_int(&b, "opts.port", 1, UINT16_MAX, &v)) {
        o->port = (uint16_t)v;
    }
    field(&b, opts, "idle_timeout");
    take_u32(&b, "opts.idle_timeout", &o->idle_timeout_ms);
    field(&b, opts, "retries");
    take_u32(&b, "opts.retries", &o->max_retries);
    field(&b, opts, "retry_delay");
    take_u32(&b, "opts.retry_delay", &o->retry_delay_ms);
    field(&b, opts, "max_redirects");
    if (take_int(&b, "opts.max_redirects", 0, UINT8_MAX, &v)) {
        o->max_redirects = (uint8_t)v;
    }
    field(&b, opts, "tls_max_fragment");
    if (take_int(&b, "opts.tls_max_fragment", 0, UINT16_MAX, &v)) {
        o->tls_max_fragment = (uint16_t)v;
    }
    field(&b, opts, "allow_insecure_redirect");
    take_bool(&b, "opts.allow_insecure_redirect", &o->allow_insecure_redirect);
    field(&b, opts, "tls_insecure");
    take_bool(&b, "opts.tls_insecure", &o->tls_insecure);
    field(&b, opts, "show_url");
    take_bool(&b, "opts.show_url", &o->show_url);
    /* Verified images: an MCUboot signature, the caller's SHA-256 and length. */
    field(&b, opts, "image_key");
    o->image_key = (const uint8_t *)take_str(&b, "opts.image_key", false, &o->image_key_len);
    field(&b, opts, "image_sha256");
    o->image_sha256 = take_sha256(&b);
    field(&b, opts, "image_len");
    take_u32(&b, "opts.image_len", &o->image_len);
    field(&b, opts, "allow_downgrade");
    take_bool(&b, "opts.allow_downgrade", &o->allow_downgrade);
    field(&b, opts, "security_counter");
    take_u32(&b, "opts.security_counter", &o->security_counter);

    /* The platform parameters, unless the URL is verbatim (###). Unlike
       libfota2, the opts table is read only (its URL never grows), and with a
       custom URL a missing key or version is left out instead of failing. */
    if (o->url == NULL || strncmp(o->url, "###", 3) != 0) {
        if (o->project_key == NULL) {
            o->project_key = global_str(&b, "PRODUCT_KEY");
        }
        if (o->version == NULL) {
            o->version = composed_version(&b);
        }
        if (o->firmware_name == NULL) {
            o->firmware_name = composed_firmware_name(&b);
        }
        if (o->imei == NULL) {
            composed_device_id(&b);
        }
    }
    return start(&b, 1);
}

static int l_poll(lua_State *L)
{
    lua_Integer ms = luaL_optinteger(L, 1, 0);
    luaL_argcheck(L, ms >= 0 && ms <= UINT32_MAX, 1, "milliseconds 0..4294967295 expected");
    int n = fotalua_deliver(L);
    if (n == 0 && ms > 0 && atomic_load(&req.state) == RUNNING && req.owner == main_thread(L)) {
        fotalua_port_wait((uint32_t)ms);
        n = fotalua_deliver(L);
    }
    lua_pushinteger(L, n);
    lua_pushinteger(L, pending(L));
    return 2;
}

static int l_abort(lua_State *L)
{
    (void)L;
    fota_abort();
    return 0;
}

static int l_progress(lua_State *L)
{
    fota_progress_t p;
    fota_get_progress(&p);
    lua_createtable(L, 0, 8);
    lua_pushinteger(L, p.state);
    lua_setfield(L, -2, "state");
    lua_pushinteger(L, p.bytes_written);
    lua_setfield(L, -2, "bytes_written");
    lua_pushinteger(L, p.total);
    lua_setfield(L, -2, "total");
    lua_pushinteger(L, p.retries);
    lua_setfield(L, -2, "retries");
    lua_pushinteger(L, p.http_status);
    lua_setfield(L, -2, "http_status");
    lua_pushinteger(L, p.platform_code);
    lua_setfield(L, -2, "platform_code");
    lua_pushinteger(L, p.verify_reason);
    lua_setfield(L, -2, "verify_reason");
    lua_pushinteger(L, pending(L));
    lua_setfield(L, -2, "pending");
    return 1;
}

static int l_result_str(lua_State *L)
{
    lua_Integer code = luaL_checkinteger(L, 1);
    lua_pushstring(L, fota_result_str(code < INT32_MIN || code > INT32_MAX ? -1 : (int32_t)code));
    return 1;
}

/* Finaliser of the state's sentinel (runs at lua_close, before the module's
   code is unloaded): a request still running is aborted and waited for, and
   the worker task joined, so it never runs after its code or its strings
   are gone. */
static int l_gc(lua_State *L)
{
    if (atomic_load(&req.state) != IDLE && req.owner == main_thread(L)) {
        fota_abort();
        while (atomic_load(&req.state) == RUNNING) {
            fotalua_port_wait(FOTA_ABORT_SLICE_MS);
        }
        int32_t code;
        int32_t platform;
        if (take_done(L, &code, &platform)) {
            lua_pop(L, 1); /* the callback is not called: the state is closing */
        }
    }
    fotalua_port_join();
    return 0;
}

/* Shared set-up of both modules: fota's hooks once per process; the queue
   and the finaliser once per Lua state. */
static void open_common(lua_State *L)
{
    static bool initialised;
    if (!initialised) {
        if (fotalua_port_init() != 0) {
            luaL_error(L, "libfota: fota_init failed");
        }
        initialised = true;
    }
    if (lua_rawgetp(L, LUA_REGISTRYINDEX, &SENTINEL_KEY) == LUA_TNIL) {
        lua_newtable(L);
        lua_rawsetp(L, LUA_REGISTRYINDEX, &PENDING_KEY);
        lua_newuserdata(L, 1);
        lua_createtable(L, 0, 1);
        lua_pushcfunction(L, l_gc);
        lua_setfield(L, -2, "__gc");
        lua_setmetatable(L, -2);
        lua_rawsetp(L, LUA_REGISTRYINDEX, &SENTINEL_KEY);
    }
    lua_pop(L, 1);
}

static int open_module(lua_State *L, lua_CFunction request)
{
    const luaL_Reg funcs[] = {
        { "request", request },
        { "poll", l_poll },
        { "abort", l_abort },
        { "progress", l_progress },
        { "result_str", l_result_str },
        { NULL, NULL },
    };
    open_common(L);
    luaL_newlib(L, funcs);
    return 1;
}

int luaopen_libfota(lua_State *L)
{
    return open_module(L, l_libfota_request);
}

int luaopen_libfota2(lua_State *L)
{
    return open_module(L, l_libfota2_request);
}
