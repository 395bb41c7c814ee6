#!/bin/sh
# Makes a test CA and, signed by it, a server certificate for 127.0.0.1 and localhost and a client
# certificate (subject CN=alice), with `openssl`, in this script's directory (or DIR):
#   sh examples/tls/make-certs.sh [DIR]
# ca.pem/ca.key, server.pem/server.key, client.pem/client.key; keys are P-256, valid 30 days.
# For trying TLS out; a deployment's certificates come from its own CA.
set -eu
dir=${1:-$(dirname "$0")}
cd "$dir"
key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1"; }
sign() {  # name subject extensions
  openssl req -new -key "$1.key" -subj "$2" -out "$1.csr"
  printf '%s\n' "$3" > "$1.ext"
  openssl x509 -req -in "$1.csr" -CA ca.pem -CAkey ca.key -CAcreateserial -days 30 \
    -extfile "$1.ext" -out "$1.pem" 2>/dev/null
  rm -f "$1.csr" "$1.ext"
}
key ca.key
openssl req -x509 -new -key ca.key -out ca.pem -days 30 -subj "/CN=nodata example CA" \
  -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign
key server.key
sign server "/CN=localhost" "subjectAltName=IP:127.0.0.1,IP:::1,DNS:localhost
extendedKeyUsage=serverAuth"
key client.key
sign client "/CN=alice" "extendedKeyUsage=clientAuth"
rm -f ca.srl
chmod 600 ca.key server.key client.key
echo "made ca.pem, server.pem, client.pem (and their keys) in $(pwd)"
