#!/usr/bin/env bash
# The main job, end to end: a local nginx serves a sample firmware image
# (rate-limited so that the progress bar is visible) and fota-posix downloads
# it into a file-backed flash; then the checksums are compared.
#
#   scripts/demo.sh --lua   the same download by a LuatOS script, unchanged
#                           from the libfota2 documentation, through the Lua
#                           module libfota2 and examples-c/lua/luatos.lua
set -euo pipefail
cd "$(dirname "$0")/.."

lua=
case "${1:-}" in
    --lua) lua=$(command -v lua5.4 || command -v lua5.3 || true) ;;
    "") ;;
    *) echo "usage: scripts/demo.sh [--lua]" >&2; exit 2 ;;
esac

scripts/setup.sh
cmake -S . -B build/demo -DCMAKE_BUILD_TYPE=Release >/dev/null
if [ -n "${1:-}" ]; then
    [ -n "$lua" ] || { echo "demo: no lua5.4 or lua5.3" >&2; exit 1; }
    lua_version=${lua##*lua}
    echo "demo: building the Lua modules for Lua $lua_version"
    cmake --build build/demo --target "fotalua${lua_version/./}" -j"$(nproc)" >/dev/null
else
    echo "demo: building fota-posix"
    cmake --build build/demo --target fota-posix -j"$(nproc)" >/dev/null
fi
bin=build/demo/examples-c/posix/fota-posix

work=$(mktemp -d)
nginx_pid=
cleanup() {
    [ -n "$nginx_pid" ] && kill "$nginx_pid" 2>/dev/null && wait "$nginx_pid" 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT

mkdir -p "$work/www" "$work/logs"
head -c $((8 * 1024 * 1024)) /dev/urandom >"$work/www/firmware-v2.bin"
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cat >"$work/nginx.conf" <<CONF
error_log $work/logs/error.log;
pid $work/nginx.pid;
events {}
http {
    access_log off;
    client_body_temp_path $work/client_body;
    proxy_temp_path $work/proxy;
    fastcgi_temp_path $work/fastcgi;
    uwsgi_temp_path $work/uwsgi;
    scgi_temp_path $work/scgi;
    server {
        listen 127.0.0.1:$port;
        root $work/www;
        limit_rate 4m;
    }
}
CONF
nginx -p "$work" -c "$work/nginx.conf" -g 'daemon off; master_process off;' &
nginx_pid=$!
for _ in $(seq 50); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
    sleep 0.1
done

url="http://127.0.0.1:$port/firmware-v2.bin"
echo "demo: nginx serves an 8 MiB image at $url"
set +e
if [ -n "$lua" ]; then
    # libfota2's documented example, plus a progress line every 500 ms.
    cat >"$work/main.lua" <<'LUA'
local libfota2 = require("libfota2")
function libfota_cb(result)
    log.info("fota", "result", result)
    if result == 0 then
        rtos.reboot()
    end
end
local opts = {url="http://xxxxxx.com/xxx/upgrade"}
libfota2.request(libfota_cb, opts)
sys.timerLoopStart(function()
    local p = libfota2.progress()
    log.info("fota", "progress", p.bytes_written, "/", p.total)
end, 500)
LUA
    mkdir -p "$work/www/xxx"
    ln -s ../firmware-v2.bin "$work/www/xxx/upgrade"
    echo "demo: FOTA_HOSTS=xxxxxx.com=127.0.0.1:$port $(basename "$lua") examples-c/lua/luatos.lua main.lua"
    sed 's/^/demo:   | /' "$work/main.lua"
    FOTA_HOSTS="xxxxxx.com=127.0.0.1:$port" FOTA_OUT="$work/firmware.bin" \
        LUA_CPATH="build/demo/examples-c/lua/$lua_version/?.so" \
        "$lua" examples-c/lua/luatos.lua "$work/main.lua"
else
    echo "demo: fota-posix --out $work/firmware.bin $url"
    "$bin" --out "$work/firmware.bin" "$url"
fi
code=$?
set -e
echo "demo: exit code $code"
[ "$code" -eq 0 ] || exit "$code"
served=$(sha256sum <"$work/www/firmware-v2.bin" | cut -d' ' -f1)
flashed=$(sha256sum <"$work/firmware.bin" | cut -d' ' -f1)
echo "demo: sha256 served  $served"
echo "demo: sha256 flashed $flashed"
if [ "$served" = "$flashed" ]; then
    echo "demo: the flashed image is identical to the served one"
else
    echo "demo: MISMATCH" >&2
    exit 1
fi
