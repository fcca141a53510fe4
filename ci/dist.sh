#!/usr/bin/env bash
# `make dist`: packs the three static binaries (built by make release-static, release-arm64 and
# release-armv7) into one tarball per architecture, with README.md, LICENSE, CHANGELOG.md and
# deploy/ (a systemd unit and a commented config file), plus SHA256SUMS, in target/dist/.
#
# Reproducible: the same inputs give the same bytes. Every file gets the time of the last commit
# (SOURCE_DATE_EPOCH, if set, wins), owner and group 0, fixed modes (0755 for the binary and
# directories, 0644 for the rest), and the tar lists them sorted by name; gzip -n leaves out the
# name and time it would otherwise store.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

die() {
    echo "dist: $*" >&2
    exit 1
}

version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n1)
[[ -n $version ]] || die "no version in Cargo.toml"

docs=(README.md LICENSE CHANGELOG.md)
deploy=(deploy/pocketkv.service deploy/pocketkv.conf)
for file in "${docs[@]}" "${deploy[@]}"; do
    [[ -f $file ]] || die "$file is missing: every tarball ships it (README.md, LICENSE," \
        "CHANGELOG.md and deploy/ are written with the code, not by this script)"
done

# (archive name, Rust target triple)
arches=(
    "x86_64-linux-musl x86_64-unknown-linux-musl"
    "aarch64-linux-musl aarch64-unknown-linux-musl"
    "armv7-linux-musleabihf armv7-unknown-linux-musleabihf"
)
for entry in "${arches[@]}"; do
    read -r _ triple <<<"$entry"
    bin=target/$triple/small/pocketkv
    [[ -f $bin ]] || die "$bin is missing (make release-static release-arm64 release-armv7)"
done

if [[ -z ${SOURCE_DATE_EPOCH:-} ]]; then
    SOURCE_DATE_EPOCH=$(git log -1 --format=%ct 2>/dev/null) ||
        die "not a git checkout: set SOURCE_DATE_EPOCH to the time the tarballs should carry"
fi

out=target/dist
stage=target/dist-stage
rm -rf "$out" "$stage"
mkdir -p "$out" "$stage"

for entry in "${arches[@]}"; do
    read -r arch triple <<<"$entry"
    name=pocketkv-$version-$arch
    dir=$stage/$name
    mkdir -p "$dir/deploy"
    cp target/"$triple"/small/pocketkv "$dir/pocketkv"
    cp "${docs[@]}" "$dir/"
    cp "${deploy[@]}" "$dir/deploy/"
    find "$dir" -type d -exec chmod 0755 {} +
    find "$dir" -type f -exec chmod 0644 {} +
    chmod 0755 "$dir/pocketkv"
    tar --create --format=ustar --sort=name --mtime="@$SOURCE_DATE_EPOCH" \
        --owner=0 --group=0 --numeric-owner --directory="$stage" "$name" |
        gzip -9 -n >"$out/$name.tar.gz"
done
rm -rf "$stage"

(cd "$out" && sha256sum -- *.tar.gz >SHA256SUMS)
echo "dist: target/dist/ (files dated $(date -u -d "@$SOURCE_DATE_EPOCH" +%FT%TZ))"
(cd "$out" && for f in *.tar.gz; do printf '  %s  %s bytes\n' "$f" "$(stat -c %s "$f")"; done)
sed 's/^/  /' "$out/SHA256SUMS"
