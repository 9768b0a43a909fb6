#!/bin/sh
# tools/demo.sh BIN: the pod on this machine.  Python's http.server serves www/ on 8087 (the
# application), sidemeter listens on 8080 in front of it with metrics on 9145.  Runs in the
# foreground; Ctrl-C stops both.
set -eu
bin=$1
cd "$(dirname "$0")/.."
python3 -m http.server 8087 --bind 127.0.0.1 --directory www >/dev/null 2>&1 &
app=$!
trap 'kill "$app" 2>/dev/null || :' EXIT
trap ':' INT TERM	# Ctrl-C reaches sidemeter too; it drains and exits, then we clean up
echo "demo: the application on 127.0.0.1:8087, sidemeter on http://localhost:8080/," \
	"metrics and status on http://localhost:9145/ (Ctrl-C stops)"
"$bin" --listen 0.0.0.0:8080 --upstream 127.0.0.1:8087 --metrics 0.0.0.0:9145 \
	--dump-interval 5 || :
