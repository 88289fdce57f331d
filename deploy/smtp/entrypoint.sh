#!/bin/sh
# The compose `smtp` container: Interlock's Postfix (deploy/smtp/postfix-conf.sh)
# in the foreground, STARTTLS with the certificate from the compose secrets,
# every message in the Maildir of the `smtp-mail` volume. Read mail with
#   docker compose exec smtp sh -c 'cat /var/mail/interlock/Maildir/new/*'
set -eu
mkdir -p /var/mail/interlock/Maildir/new /var/mail/interlock/Maildir/cur /var/mail/interlock/Maildir/tmp
chown -R interlock-mail:interlock-mail /var/mail/interlock
chmod 700 /var/mail/interlock
sh /usr/local/lib/interlock/postfix-conf.sh /etc/postfix-interlock /var/spool/postfix-interlock \
  "0.0.0.0:${SMTP_PORT:-587}" "${SMTP_MYNETWORKS:-10.0.0.0/8 172.16.0.0/12 192.168.0.0/16 127.0.0.0/8}" \
  /var/mail/interlock "$(id -u interlock-mail)" "$(id -g interlock-mail)" \
  /run/secrets/smtp_tls_cert /run/secrets/smtp_tls_key
exec postfix -c /etc/postfix-interlock start-fg
