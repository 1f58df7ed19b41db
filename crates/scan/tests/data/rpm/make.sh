#!/bin/sh
# Writes the rpm databases in this directory (gzipped) with real rpm builds: the
# packages are built from specs/ by rpmbuild, then installed (--justdb)
# into empty databases by rpm itself.
#
#   rpmdb.sqlite  Debian 12's rpm 4.18.0 (`apt-get install rpm`), whose
#                 default backend is sqlite.
#   Packages      rpm 4.16.1.3 built from source with Berkeley DB
#                 (Debian 12's libdb5.3-dev, db 5.3.28): the last rpm
#                 release that writes BDB (4.17 keeps only a reader).
#   Packages.db   the same rpm 4.16.1.3, NDB backend.
#
# rpm 4.16.1.3 (tag rpm-4.16.1.3, commit 3659b8a04f5b8bacf6535e0124e7fe23f15286bd
# of github.com/rpm-software-management/rpm) was built with:
#   autoreconf -i && ./configure --prefix=$RPM416 --enable-bdb=yes --enable-ndb \
#     --enable-sqlite=yes --with-crypto=libgcrypt --without-lua --disable-python \
#     --disable-plugins --disable-openmp --without-selinux --without-cap \
#     --without-acl --without-audit --disable-nls && make && make install
# (build dependencies from Debian 12: autoconf automake libtool autopoint
# gettext pkg-config libpopt-dev libmagic-dev libgcrypt20-dev zlib1g-dev
# libdb5.3-dev libsqlite3-dev libarchive-dev libzstd-dev liblzma-dev libbz2-dev).
#
# Usage: RPM416=/path/to/prefix sh make.sh
set -eu
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
rpm416="$RPM416/bin/rpm"

for spec in "$here"/specs/*.spec; do
    rpmbuild --quiet -ba --define "_topdir $work/build" "$spec"
done
packages=$(find "$work/build/RPMS" -name '*.rpm' | sort)

install_into() { # backend rpm-binary
    db="$work/db-$1"
    mkdir -p "$db"
    "$2" --dbpath "$db" --define "_db_backend $1" --initdb
    # shellcheck disable=SC2086 # one argument a package
    "$2" --dbpath "$db" --define "_db_backend $1" -i --justdb --nodeps --nosignature \
        --ignorearch --ignoreos $packages
    "$2" --dbpath "$db" --define "_db_backend $1" -qa \
        --queryformat '%{NAME} %{EPOCH} %{VERSION}-%{RELEASE} %{ARCH} %{SOURCERPM} %{LICENSE}\n' | sort
}
# Kept gzipped (-n: no name or time, so a rebuild compares): mostly empty pages.
install_into sqlite rpm && gzip -9 -n -c "$work/db-sqlite/rpmdb.sqlite" >"$here/rpmdb.sqlite.gz"
install_into bdb "$rpm416" && gzip -9 -n -c "$work/db-bdb/Packages" >"$here/Packages.gz"
install_into ndb "$rpm416" && gzip -9 -n -c "$work/db-ndb/Packages.db" >"$here/Packages.db.gz"
