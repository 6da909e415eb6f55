#!/usr/bin/env bash
# Regenerates the test PKI in this directory (see README.md). ECDSA P-256 keys, PEM.
# Usage: bash certs/gen.sh   (or: deno task certs). Safe to run from any directory.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")"

DAYS=36500
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT

# Validity starts a day ago so freshly generated certs are not "not yet valid" on a host whose
# clock lags a little. GNU date first, then BSD date.
START="$(date -u -d '1 day ago' +%Y%m%d%H%M%SZ 2>/dev/null || date -u -v-1d +%Y%m%d%H%M%SZ)"
END="$(date -u -d "+$DAYS days" +%Y%m%d%H%M%SZ 2>/dev/null || date -u -v+"$DAYS"d +%Y%m%d%H%M%SZ)"

# Extension sections, shared by every CA's config.
cat >"$TMP/ext.cnf" <<'EOF'
[ca_ext]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid

[server]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = DNS:localhost,IP:127.0.0.1,IP:::1
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid

[noip_server]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = DNS:localhost
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid

[client]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = clientAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
EOF

# cadb <ca-name>: prints the path of a throwaway `openssl ca` config for <ca-name>.
# (`openssl x509 -req` in OpenSSL 3.0 cannot set arbitrary dates, so everything goes through
# `openssl ca`.)
cadb() {
  local db="$TMP/db-$1"
  if [ ! -d "$db" ]; then
    mkdir -p "$db"
    : >"$db/index.txt"
    openssl rand -hex 16 >"$db/serial"
    {
      echo "[ca]"
      echo "default_ca = test_ca"
      echo "[test_ca]"
      echo "database = $db/index.txt"
      echo "serial = $db/serial"
      echo "new_certs_dir = $db"
      echo "certificate = $PWD/$1.pem"
      echo "private_key = $PWD/$1-key.pem"
      echo "default_md = sha256"
      echo "policy = policy_any"
      echo "unique_subject = no"
      echo "copy_extensions = none"
      echo "[policy_any]"
      echo "commonName = supplied"
      cat "$TMP/ext.cnf"
    } >"$db/ca.cnf"
  fi
  echo "$db/ca.cnf"
}

# csr <name> <CN>: new key <name>-key.pem and a CSR in $TMP.
csr() {
  openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1-key.pem" 2>/dev/null
  openssl req -new -key "$1-key.pem" -subj "/CN=$2" -out "$TMP/$1.csr"
}

# mkca <name> <CN>: self-signed CA.
mkca() {
  csr "$1" "$2"
  openssl ca -batch -selfsign -config "$(cadb "$1")" -keyfile "$1-key.pem" -extensions ca_ext \
    -notext -startdate "$START" -enddate "$END" -in "$TMP/$1.csr" -out "$1.pem" 2>/dev/null
}

# sign <name> <CN> <ca-name> <ext-section> <startdate> <enddate>: a leaf signed by <ca-name>.
sign() {
  csr "$1" "$2"
  openssl ca -batch -config "$(cadb "$3")" -extensions "$4" -notext \
    -startdate "$5" -enddate "$6" -in "$TMP/$1.csr" -out "$1.pem" 2>/dev/null
}

mkca ca "grpc_health_proxy test CA"
sign server localhost ca server "$START" "$END"
sign client "test client" ca client "$START" "$END"
sign noip-server localhost ca noip_server "$START" "$END"

mkca other-ca "grpc_health_proxy other test CA"
sign other-server localhost other-ca server "$START" "$END"
sign other-client "other test client" other-ca client "$START" "$END"

# Signed by the real CA, but outside their validity window.
sign expired-server localhost ca server 20200101000000Z 20210101000000Z
sign expired-client "expired test client" ca client 20200101000000Z 20210101000000Z
sign notyet-client "not yet valid test client" ca client 20900101000000Z 21000101000000Z

# Sanity: the current ones verify against their CA.
for c in server client noip-server; do openssl verify -CAfile ca.pem "$c.pem" >/dev/null; done
for c in other-server other-client; do openssl verify -CAfile other-ca.pem "$c.pem" >/dev/null; done

# Temp files live in $TMP (removed by the trap); also clear leftovers of older versions.
rm -f ./*.srl ./*.csr ./*.ext ./*.cnf
echo "certs regenerated in $PWD"
