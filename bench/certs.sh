# Sourced by production-env.sh and baselines.sh. make_certs DIR: a CA (DIR/ca.pem), a server
# certificate for localhost and 127.0.0.1 (DIR/server.pem, .key) and a client certificate
# (DIR/client.pem, .key) signed by it, for mutual TLS on a gRPC hop; valid two days.
make_certs() {
  local dir=$1 who usage
  mkdir -p "$dir"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
    -subj /CN=bench-ca -keyout "$dir/ca.key" -out "$dir/ca.pem" 2>/dev/null
  for who in server client; do
    usage=$([ $who = server ] && echo serverAuth || echo clientAuth)
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj "/CN=localhost" \
      -keyout "$dir/$who.key" -out "$dir/$who.csr" 2>/dev/null
    openssl x509 -req -in "$dir/$who.csr" -CA "$dir/ca.pem" -CAkey "$dir/ca.key" \
      -CAcreateserial -days 2 -out "$dir/$who.pem" -extfile <(printf '%s\n' \
        "subjectAltName=DNS:localhost,IP:127.0.0.1" "basicConstraints=CA:FALSE" \
        "keyUsage=digitalSignature" "extendedKeyUsage=$usage") 2>/dev/null
  done
}
