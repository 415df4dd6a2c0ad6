#!/usr/bin/env bash
# Installs everything ceo and its sandbox cluster need on a Debian 12 machine (run as root):
# the Debian daemons (none of them started: policy-rc.d), the client/helper virtualenv (.venv)
# and Mailman's own virtualenv (.venv-mailman; its dependencies clash with ours).
set -euo pipefail
cd "$(dirname "$0")/.."

# Package scripts must never start system daemons on wildcard addresses.
if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
fi

pkgs=(krb5-kdc krb5-admin-server krb5-user slapd ldap-utils libsasl2-modules-gssapi-mit
      openssh-server openssh-client mariadb-server postgresql libkrb5-dev sudo
      nslcd libnss-ldapd util-linux procps iproute2 acl
      # the libraries sssd needs (plain libraries: they configure nothing)
      libc-ares2 libdhash1 libini-config5 libldb2 libnfsidmap1 libref-array1 libsss-certmap0
      libsss-idmap0 libsss-nss-idmap0 libtalloc2 libtdb1 libtevent0 libnl-3-200 libnl-route-3-200)
missing=()
for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    # libnss-ldapd would otherwise offer to edit the machine's nsswitch.conf; the sandbox
    # uses its own copy inside a private mount namespace.
    echo 'libnss-ldapd libnss-ldapd/nsswitch multiselect' | debconf-set-selections
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# sssd itself is unpacked, not installed: its packages would add it to the machine's
# nsswitch.conf and PAM. The sandbox lays .sssd/usr over /usr in its own namespace.
if [ ! -x .sssd/usr/sbin/sssd ]; then
    debs=$(mktemp -d)
    (cd "$debs" && apt-get download -qq -o APT::Sandbox::User=root \
        sssd-common sssd-ldap sssd-krb5-common libsss-sudo)
    rm -rf .sssd.new && mkdir .sssd.new
    for deb in "$debs"/*.deb; do dpkg-deb -x "$deb" .sssd.new; done
    rm -rf "$debs" .sssd && mv .sssd.new .sssd
fi

py=${PYTHON:-python3}
# The checkout's path in a .pth (compat), not setuptools' editable import hook: the hook's
# imports (pathlib and more) cost ~9 ms of every Python start, the client's and every helper's.
hook=$(ls .venv/lib/python3*/site-packages/__editable___ceo_*_finder.py 2>/dev/null || true)
if [ ! -x .venv/bin/ceo ] || [ setup.cfg -nt .venv/.stamp ] || [ -n "$hook" ]; then
    [ -d .venv ] || "$py" -m venv .venv
    .venv/bin/pip install -q --upgrade pip
    .venv/bin/pip install -q -e '.[test]' --config-settings editable_mode=compat
    touch .venv/.stamp
fi
# The example plugin (examples/plugin) is a distribution of its own, installed the way a site
# installs one, so that ceo (and the helper, through sudo with this venv) finds it through its
# `ceo.plugins` entry point. Reinstalled when one of its files changes.
changed() { find examples/plugin -newer "$1" -type f -not -path '*.egg-info/*' -not -path '*/build/*' \
                 -not -path '*/__pycache__/*' -print -quit; }
if [ ! -e .venv/.stamp-plugin ] || [ -n "$(changed .venv/.stamp-plugin)" ]; then
    .venv/bin/pip install -q --no-deps --force-reinstall ./examples/plugin
    rm -rf examples/plugin/build
    touch .venv/.stamp-plugin
fi
# setuptools only builds ceo and the plugin, and pip builds them in an isolated environment of
# its own; left in the venv, its distutils-precedence.pth imports a module at every Python start
# there (~0.5 ms of the client's and of every helper's: docs/deploy.md §1).
if [ -n "$(ls .venv/lib/python3*/site-packages/distutils-precedence.pth 2>/dev/null)" ]; then
    .venv/bin/pip uninstall -q -y setuptools
fi
if [ ! -x .venv-mailman/bin/mailman ] || [ sandbox/mailman-requirements.txt -nt .venv-mailman/.stamp ]; then
    [ -d .venv-mailman ] || "$py" -m venv .venv-mailman
    .venv-mailman/bin/pip install -q -r sandbox/mailman-requirements.txt
    touch .venv-mailman/.stamp
fi
