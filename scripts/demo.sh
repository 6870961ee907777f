#!/usr/bin/env bash
# The main job, end to end: a local nginx serves a sample firmware image
# (rate-limited so that the progress bar is visible) and fota-posix downloads
# it into a file-backed flash; then the checksums are compared.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh
echo "demo: building fota-posix"
cmake -S . -B build/demo -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build/demo --target fota-posix -j"$(nproc)" >/dev/null
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
echo "demo: fota-posix --out $work/firmware.bin $url"
set +e
"$bin" --out "$work/firmware.bin" "$url"
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
