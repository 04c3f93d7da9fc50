# The HTTP ceiling of this machine: nginx with one worker answering every request with a
# fixed 201, under the same load as Stele. It is the cost of HTTP here, not a competing
# product. Sourced by bench/run.sh and bench/compare.sh.

# start_nginx_ceiling DIR PORT: writes DIR/nginx.conf, starts nginx in the background and
# waits until it answers on 127.0.0.1:PORT; sets nginx_pid.
start_nginx_ceiling() {
  local dir=$1 port=$2
  local bin
  bin=$(command -v nginx || echo /usr/sbin/nginx)
  mkdir -p "$dir/logs"
  cat >"$dir/nginx.conf" <<EOF
worker_processes 1;
daemon off;
error_log $dir/logs/error.log warn;
pid $dir/nginx.pid;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $dir;
  proxy_temp_path $dir;
  fastcgi_temp_path $dir;
  uwsgi_temp_path $dir;
  scgi_temp_path $dir;
  server {
    listen 127.0.0.1:$port;
    location / { default_type application/json; return 201 '{"success":true}'; }
  }
}
EOF
  "$bin" -p "$dir" -c "$dir/nginx.conf" &
  nginx_pid=$!
  for _ in $(seq 1 100); do curl -s -o /dev/null "http://127.0.0.1:$port/" && break; sleep 0.05; done
}
