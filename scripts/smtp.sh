#!/usr/bin/env bash
# A private SMTP server for Interlock's email (verification and password
# reset codes): Postfix from Debian, an instance of its own outside the
# clone, listening on 127.0.0.1 only, offering STARTTLS with a locally made
# certificate, and delivering every message, whatever its address, to one
# Maildir that the tests (and `interlock-mesh mail`) read. Nothing is ever
# relayed beyond this machine. Its configuration is written by
# deploy/smtp/postfix-conf.sh, which the compose `smtp` image runs too.
#   smtp.sh start   install (Debian) if missing, configure, start if stopped
#   smtp.sh stop
#   smtp.sh env     shell assignments for the tests (address, CA, Maildir)
# Idempotent. Needs root (Postfix's master runs as root).
set -euo pipefail
source "$(dirname "$0")/lib.sh"

[ "$(id -u)" = 0 ] || exec sudo -E "$0" "$@"

# From mesh/topology.toml ([smtp]), read directly: this runs before
# anything is built.
SMTP_PORT="$(topology_value smtp port)"
SMTP_HOME="$(topology_value smtp home)"
[ -n "$SMTP_PORT" ] && [ -n "$SMTP_HOME" ] || die "no [smtp] port and home in mesh/topology.toml"
CONF="$SMTP_HOME/etc"
TLS="$SMTP_HOME/tls"
MAILDIR="$SMTP_HOME/mail/Maildir"
# The Unix user that owns the delivered mail (Postfix delivers as it).
MAIL_USER="interlock-mail"
# Server certificate lifetime and when `start` renews it.
CERT_DAYS=90
RENEW_SECS=$((30 * 24 * 3600))

pf() { /usr/sbin/postfix -c "$CONF" "$@"; }

install() {
  [ -x /usr/sbin/postfix ] && return
  log "installing Postfix (Debian packages)"
  # No system-wide configuration: this script runs its own instance.
  echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postfix >/dev/null
}

# A local CA (kept) and a server certificate for localhost / 127.0.0.1,
# renewed when it has less than 30 days left.
tls() {
  mkdir -p "$TLS"
  chmod 755 "$TLS"
  if [ ! -s "$TLS/ca.pem" ] || [ ! -s "$TLS/ca-key.pem" ]; then
    ( umask 077; openssl ecparam -name prime256v1 -genkey -noout -out "$TLS/ca-key.pem" )
    openssl req -x509 -new -key "$TLS/ca-key.pem" -sha256 -days 3650 \
      -subj "/CN=Interlock local SMTP CA" -out "$TLS/ca.pem" 2>/dev/null
    rm -f "$TLS/server.pem"
  fi
  if [ -s "$TLS/server.pem" ] && openssl x509 -checkend "$RENEW_SECS" -noout -in "$TLS/server.pem" >/dev/null; then
    return
  fi
  log "issuing the SMTP server's certificate ($CERT_DAYS days)"
  ( umask 077; openssl ecparam -name prime256v1 -genkey -noout -out "$TLS/server-key.pem" )
  openssl req -new -key "$TLS/server-key.pem" -subj "/CN=localhost" -out "$TLS/server.csr" 2>/dev/null
  printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' > "$TLS/server.ext"
  openssl x509 -req -in "$TLS/server.csr" -CA "$TLS/ca.pem" -CAkey "$TLS/ca-key.pem" \
    -CAcreateserial -days "$CERT_DAYS" -sha256 -extfile "$TLS/server.ext" -out "$TLS/server.pem" 2>/dev/null
  rm -f "$TLS/server.csr" "$TLS/server.ext"
  chmod 644 "$TLS/ca.pem" "$TLS/server.pem"
  # A renewed certificate is read by new smtpd processes; reload if up.
  pf status >/dev/null 2>&1 && pf reload >/dev/null 2>&1 || true
}

configure() {
  id -u "$MAIL_USER" >/dev/null 2>&1 ||
    useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin "$MAIL_USER"
  local uid gid
  uid="$(id -u "$MAIL_USER")"
  gid="$(id -g "$MAIL_USER")"
  mkdir -p "$MAILDIR"/{new,cur,tmp}
  chmod 755 "$SMTP_HOME"
  # Mail holds codes: its owner and root only.
  chown -R "$MAIL_USER:$MAIL_USER" "$SMTP_HOME/mail"
  chmod 700 "$SMTP_HOME/mail"
  # The same configuration as the compose `smtp` image, on loopback.
  sh "$INTERLOCK_ROOT/deploy/smtp/postfix-conf.sh" "$CONF" "$SMTP_HOME" "127.0.0.1:$SMTP_PORT" \
    127.0.0.0/8 "$SMTP_HOME/mail" "$uid" "$gid" "$TLS/server.pem" "$TLS/server-key.pem"
  pf set-permissions >/dev/null 2>&1 || true
}

start() {
  install
  configure
  tls
  if pf status >/dev/null 2>&1; then
    pf reload >/dev/null 2>&1
    return
  fi
  log "starting Postfix on 127.0.0.1:$SMTP_PORT (mail in $MAILDIR)"
  pf check >/dev/null
  pf start >/dev/null 2>&1 || { tail -n 20 "$SMTP_HOME/log/postfix.log" >&2 || true; die "Postfix did not start"; }
}

case "${1:-}" in
  start) start ;;
  stop) [ -x /usr/sbin/postfix ] && [ -f "$CONF/main.cf" ] && { pf stop >/dev/null 2>&1 || true; } ;;
  env)
    printf "INTERLOCK_TEST_SMTP_ADDR='127.0.0.1:%s'\n" "$SMTP_PORT"
    printf "INTERLOCK_TEST_SMTP_CA='%s'\n" "$TLS/ca.pem"
    printf "INTERLOCK_TEST_MAILDIR='%s'\n" "$MAILDIR"
    ;;
  *) die "usage: $0 start|stop|env" ;;
esac
