# Shared by scripts/run and scripts/test: install what a fresh machine lacks.
# Sourced, not executed.

# Debian packages the build and the tests need. cmake: the opus and turbojpeg crates
# build libopus and libjpeg-turbo from source with it; nasm: libjpeg-turbo's x86 SIMD
# (the build fails without it rather than making slow photos); pkg-config: -sys crates
# find system libraries with it; ffmpeg and espeak-ng: audio/ tests make their
# fixtures (and compare durations) with them.
DORAN_APT_PACKAGES=(cmake nasm pkg-config build-essential ffmpeg espeak-ng)

# Each line carries the seconds since the script started, so a CI log shows where the
# time went.
log() { printf '\033[1m==> [%5ss] %s\033[0m\n' "$SECONDS" "$*" >&2; }

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

install_apt_packages() {
    local missing=()
    for p in "${DORAN_APT_PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        log "installing Debian packages: ${missing[*]}"
        as_root apt-get update -qq
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
    fi
}

install_rust_tools() {
    if ! command -v cargo >/dev/null; then
        echo "cargo is missing: install Rust (rustup) first" >&2
        exit 1
    fi
    rustup component list --installed 2>/dev/null | grep -q '^rustfmt' || rustup component add rustfmt clippy 2>/dev/null || true
    if ! cargo nextest --version >/dev/null 2>&1; then
        log "installing cargo-nextest"
        cargo install cargo-nextest --locked
    fi
}

# A full build with the tests, the desktop app and the bindings takes about 20 GB under
# the target dir; a full disk shows up much later as a linker "Bus error". Say it first.
DORAN_DISK_NEEDED_GB=25
check_disk() {
    local dir="${CARGO_TARGET_DIR:-target}" free_kb
    mkdir -p "$dir"
    free_kb=$(df -Pk "$dir" | awk 'NR==2 {print $4}')
    if [ "${free_kb:-0}" -lt $((DORAN_DISK_NEEDED_GB * 1024 * 1024)) ]; then
        log "warning: $((free_kb / 1024 / 1024)) GB free under $dir; a build from nothing needs about ${DORAN_DISK_NEEDED_GB} GB"
    fi
}

install_deps() {
    install_apt_packages
    install_rust_tools
    check_disk
}
