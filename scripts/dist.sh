#!/usr/bin/env bash
# dist.sh builds every release archive into $DIST_DIR (default dist/):
# static (CGO_ENABLED=0), -trimpath binaries stamped with $VERSION, packed with
# their extra files, plus a sha256 checksum file. .goreleaser.yaml produces the
# same names; keep the two in step.
#
#   VERSION=1.2.3 scripts/dist.sh                           # everything
#   VERSION=1.2.3 DIST_TARGETS=linux/amd64 scripts/dist.sh  # only these os/arch
#
# Needs: go, zip, GNU tar, sha256sum (or shasum).
set -euo pipefail

# Server archives: every os/arch the plain server binary is built for.
SERVER_TARGETS=linux/amd64,linux/arm64,linux/386,linux/armv6,linux/armv7,windows/amd64,windows/arm64,windows/386,darwin/amd64,darwin/arm64,freebsd/amd64,freebsd/arm64,freebsd/386,freebsd/armv6,freebsd/armv7,openbsd/amd64,openbsd/arm64

# The builds, one per line. Archive name: <name>_v<version>_<os>_<arch>, zip or
# tar.gz (windows always zip). files: extra files, src[:name-in-archive],
# comma-separated. tags: go build tags, - for none.
#
# name                                          package                       targets            binary                 format  files                                               tags
BUILDS="
chatgpt_reverse_proxy                           ./platforms/server            $SERVER_TARGETS    chatgpt_reverse_proxy  tar.gz  LICENSE,README.md                                   -
tencentcloud_scf_chatgpt_reverse_proxy          ./platforms/tencentscf        linux/amd64        main                   zip     build/scf_bootstrap:scf_bootstrap,LICENSE,README.md -
aliyun_fc_chatgpt_reverse_proxy                 ./platforms/aliyunfc          linux/amd64        main                   zip     build/bootstrap:bootstrap,LICENSE,README.md         -
tencentcloud_scf_event_chatgpt_reverse_proxy    ./platforms/tencentscfevent   linux/amd64        main                   zip     LICENSE,README.md                                   -
aws_lambda_chatgpt_reverse_proxy                ./platforms/awslambda         linux/amd64,linux/arm64  bootstrap        zip     LICENSE,README.md                                   lambda.norpc
"

MODULE=github.com/chatgpt-reverse-proxy/chatgpt_reverse_proxy

die() {
	echo "dist.sh: error: $*" >&2
	exit 1
}

cd "$(dirname "$0")/.."
root=$(pwd)

VERSION=${VERSION:-}
VERSION=${VERSION#v}
[[ -n $VERSION ]] || die "VERSION is not set, want e.g. VERSION=1.2.3"
[[ $VERSION =~ ^[0-9]+\.[0-9]+\.[0-9]+([-+][0-9A-Za-z.+-]+)?$ ]] || die "VERSION=\"$VERSION\" is not a version, want e.g. 1.2.3 or 1.2.3-rc.1"
DIST_DIR=${DIST_DIR:-dist}
DIST_TARGETS=${DIST_TARGETS:-}

command -v go >/dev/null || die "go not found"
command -v zip >/dev/null || die "zip not found (Debian/Ubuntu: apt-get install zip)"
tar --version 2>/dev/null | grep -q 'GNU tar' || die "GNU tar not found (macOS: brew install gnu-tar, or use goreleaser)"
if command -v sha256sum >/dev/null; then
	sha256() { sha256sum "$@"; }
else
	sha256() { shasum -a 256 "$@"; }
fi

# Build stamp: the commit, and its time for -version and for every file's
# modification time in the archives (reproducible archives).
commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
epoch=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || date +%s)}
date=$(date -u -d "@$epoch" +%Y-%m-%dT%H:%M:%SZ)
ldflags="-s -w -X $MODULE/core.Version=$VERSION -X $MODULE/core.Commit=$commit -X $MODULE/core.Date=$date"

mkdir -p "$DIST_DIR"
out=$(cd "$DIST_DIR" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

wanted() { # wanted os/arch: is the target selected by DIST_TARGETS?
	[[ -z $DIST_TARGETS || ",$DIST_TARGETS," == *",$1,"* ]]
}

# build_one name package os/arch binary format files tags
build_one() {
	local name=$1 pkg=$2 target=$3 binary=$4 format=$5 files=$6 tags=$7
	local goos=${target%/*} arch=${target#*/} goarch goarm=""
	goarch=$arch
	if [[ $arch == armv* ]]; then
		goarch=arm
		goarm=${arch#armv}
	fi
	if [[ $goos == windows ]]; then
		binary+=.exe
		format=zip
	fi
	[[ $tags == - ]] && tags=""
	local archive="${name}_v${VERSION}_${goos}_${arch}.${format}"
	local stage="$work/$name-$goos-$arch"
	mkdir -p "$stage"

	echo "dist.sh: $archive" >&2
	CGO_ENABLED=0 GOOS=$goos GOARCH=$goarch GOARM=$goarm \
		go build -trimpath -tags "$tags" -ldflags "$ldflags" -o "$stage/$binary" "$pkg"

	local entries=("$binary") spec src dst
	IFS=, read -r -a specs <<<"$files"
	for spec in "${specs[@]}"; do
		src=${spec%%:*}
		dst=${spec#*:}
		[[ $spec == *:* ]] || dst=$(basename "$src")
		cp "$root/$src" "$stage/$dst"
		entries+=("$dst")
	done
	chmod 0755 "$stage/$binary"
	touch -d "@$epoch" "$stage"/*

	rm -f "$out/$archive"
	case $format in
	zip) (cd "$stage" && zip -q -X "$out/$archive" "${entries[@]}") ;;
	tar.gz) tar -C "$stage" --sort=name --owner=0 --group=0 --numeric-owner --mtime="@$epoch" -cf - "${entries[@]}" |
		gzip -n -9 >"$out/$archive" ;;
	*) die "unknown format $format for $name" ;;
	esac
	archives+=("$archive")
}

archives=()
while read -r name pkg targets binary format files tags; do
	[[ -z $name || $name == \#* ]] && continue
	IFS=, read -r -a list <<<"$targets"
	for target in "${list[@]}"; do
		wanted "$target" && build_one "$name" "$pkg" "$target" "$binary" "$format" "$files" "$tags"
	done
done <<<"$BUILDS"
((${#archives[@]} > 0)) || die "DIST_TARGETS=\"$DIST_TARGETS\" selects no build"

checksums="chatgpt_reverse_proxy_v${VERSION}_checksums.txt"
(cd "$out" && sha256 "${archives[@]}" >"$checksums")
echo "dist.sh: ${#archives[@]} archives and $checksums in $DIST_DIR" >&2
