#!/usr/bin/env bash
# nginx-log-peer.sh — a PROXY_CMD for ../shared/bench/run-peers.sh: nginx configured as
# run-peers configures its own nginx peer, but with the access log on, as ingress-nginx
# writes it (its default `log-format-upstream`, one write per request to the log file, which
# is stdout in ingress-nginx's image; its `$req_id` is nginx's `$request_id`). The reference for what an access log costs nginx,
# measured beside run-peers' nginx (access_log off) in the same rounds.
#
# run-peers runs it as `bash -c "exec $PROXY_CMD"` with LISTEN_ADDR BACKEND_ADDR RUN_DIR in
# the environment; nginx runs in the foreground so the PID run-peers accounts is nginx's.
# Env: NGINX_LOG_PARAMS [] (appended to the access_log directive, e.g. `buffer=64k flush=1s`),
#      NGINX_LOG_FILE [$RUN_DIR/nginx-log/access.log].
set -euo pipefail
: "${LISTEN_ADDR:?}" "${BACKEND_ADDR:?}" "${RUN_DIR:?}"
D=$RUN_DIR/nginx-log
mkdir -p "$D"
cat > "$D/nginx.conf" <<CONF
worker_processes 1;
daemon off;
pid $D/nginx.pid;
error_log $D/error.log warn;
worker_rlimit_nofile 16384;
events { worker_connections 8192; }
http {
  log_format upstreaminfo '\$remote_addr - \$remote_user [\$time_local] "\$request" \$status \$body_bytes_sent "\$http_referer" "\$http_user_agent" \$request_length \$request_time [\$proxy_upstream_name] [\$proxy_alternative_upstream_name] \$upstream_addr \$upstream_response_length \$upstream_response_time \$upstream_status \$request_id';
  access_log ${NGINX_LOG_FILE:-$D/access.log} upstreaminfo ${NGINX_LOG_PARAMS:-};
  keepalive_requests 10000000;
  keepalive_timeout 75s;
  client_body_temp_path $D/body;
  proxy_temp_path $D/proxy;
  fastcgi_temp_path $D/fcgi;
  uwsgi_temp_path $D/uwsgi;
  scgi_temp_path $D/scgi;
  upstream backend {
    server $BACKEND_ADDR;
    keepalive 128;
    keepalive_requests 10000000;
  }
  server {
    listen $LISTEN_ADDR backlog=4096;
    location / {
      set \$proxy_upstream_name "default-backend-80";
      set \$proxy_alternative_upstream_name "";
      proxy_pass http://backend;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header X-Request-ID \$request_id;
    }
  }
}
CONF
exec nginx -e "$D/error.log" -p "$D/" -c "$D/nginx.conf"
