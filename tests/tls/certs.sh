#!/usr/bin/env bash
# tests/tls/certs.sh DIR: a test CA and the certificates the TLS tests use, made fresh each run.
#   ca.pem            the CA the server's and the client's certificates chain to
#   server.pem/.key   SAN weft-tls.test, localhost, 127.0.0.1
#   client.pem/.key   a client certificate (mTLS) from the same CA
#   other-ca.pem, other-client.pem/.key   an untrusted CA and a client certificate it signed
#   elsewhere.pem/.key  from the test CA, but for elsewhere.test only (a name check must refuse it)
set -euo pipefail
d=${1:?usage: certs.sh DIR}
mkdir -p "$d"
cd "$d"
umask 077
key() { openssl ecparam -name prime256v1 -genkey -noout -out "$1" 2>/dev/null; }
ca() {  # name
  key "$1.key"
  openssl req -x509 -new -key "$1.key" -subj "/CN=weft test $1" -days 2 -out "$1.pem" \
    -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign 2>/dev/null
}
leaf() {  # name ca usage san
  key "$1.key"
  openssl req -new -key "$1.key" -subj "/CN=$1" -out "$1.csr" 2>/dev/null
  printf 'basicConstraints=CA:FALSE\nextendedKeyUsage=%s\n%s' "$3" "$4" > "$1.ext"
  openssl x509 -req -in "$1.csr" -CA "$2.pem" -CAkey "$2.key" -CAcreateserial -days 2 -out "$1.pem" \
    -extfile "$1.ext" 2>/dev/null
  rm -f "$1.csr" "$1.ext"
}
ca ca
ca other-ca
leaf server ca serverAuth 'subjectAltName=DNS:weft-tls.test,DNS:localhost,IP:127.0.0.1'
leaf client ca clientAuth ''
leaf other-client other-ca clientAuth ''
leaf elsewhere ca serverAuth 'subjectAltName=DNS:elsewhere.test'
chmod 644 ./*.pem
