# The mobile bindings (mobile-bindings/): build the library, write its Kotlin, Swift and
# Python bindings, run the end-to-end test through the Python ones. Sourced after
# common.sh, not executed.

# Debian packages the bindings and their test need beyond the build's: python3 (the
# tests, and reading cargo metadata), pip (pytest), ffmpeg (the test's Ogg/Opus, M4A
# and JPEG fixtures, made with real encoders).
DORAN_APT_PACKAGES+=(python3 python3-pip ffmpeg)

# The cargo target directory (CARGO_TARGET_DIR or the workspace's).
mobile_target_dir() {
    cargo metadata --format-version 1 --no-deps --locked |
        python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])'
}

# mobile_bindings OUT_DIR [--release]: builds doran-mobile and uniffi-bindgen, then
# writes OUT_DIR/kotlin, OUT_DIR/swift (with the C header and the modulemap) and
# OUT_DIR/python (with the library beside it, which is how Python loads it). Bindings
# generated from the same library before are kept.
mobile_bindings() {
    local out=$1 profile=debug
    local flags=()
    if [ "${2:-}" = "--release" ]; then
        profile=release
        flags=(--release)
    fi
    log "building doran-mobile ($profile) and uniffi-bindgen"
    # scripts/test sets MOBILE_CARGO_SCOPE=--workspace: selecting packages with -p
    # resolves other features for the shared dependencies and compiles ~100 crates a
    # second time; the whole workspace reuses what the test build already compiled.
    # shellcheck disable=SC2086
    cargo build --locked "${flags[@]}" ${MOBILE_CARGO_SCOPE:--p doran-mobile -p doran-uniffi-bindgen}
    local bin lib
    bin="$(mobile_target_dir)/$profile"
    lib="$bin/libdoran_mobile.so"
    [ "$(uname)" = Darwin ] && lib="$bin/libdoran_mobile.dylib"
    mkdir -p "$out"
    out="$(cd "$out" && pwd)"
    # The library's identity: generated again only when it changed.
    local stamp
    stamp="$(cksum < "$lib") $(cksum < mobile-bindings/uniffi.toml)"
    if [ -f "$out/.stamp" ] && [ "$(cat "$out/.stamp")" = "$stamp" ] &&
        mobile_bindings_present "$out"; then
        log "bindings in $out are up to date"
        return
    fi
    log "writing Kotlin, Swift and Python bindings to $out"
    rm -rf "$out/kotlin" "$out/swift" "$out/python" "$out/.stamp"
    local lang
    for lang in kotlin swift python; do
        "$bin/uniffi-bindgen" generate --library "$lib" --crate doran_mobile \
            --metadata-no-deps --no-format --language "$lang" --out-dir "$out/$lang"
    done
    cp mobile-bindings/swift/*.swift "$out/swift/"
    cp "$lib" "$out/python/"
    mobile_bindings_present "$out" || {
        echo "uniffi-bindgen did not write every expected file in $out" >&2
        return 1
    }
    echo "$stamp" > "$out/.stamp"
}

# Whether every file the apps and the tests need is in OUT_DIR.
mobile_bindings_present() {
    local out=$1 f
    for f in kotlin/app/dorandoran/core/doran_mobile.kt \
        swift/DoranMobile.swift swift/DoranMobileFFI.h swift/DoranMobileFFI.modulemap \
        "swift/DoranError+Message.swift" \
        python/doran_mobile.py; do
        [ -s "$out/$f" ] || return 1
    done
    compgen -G "$out/python/libdoran_mobile.*" >/dev/null
}

# pytest for the end-to-end test, if python3 lacks it, with pip (Debian 12's system
# Python wants --break-system-packages for that); else Debian's own package.
install_pytest() {
    python3 -c 'import pytest' 2>/dev/null && return
    log "installing pytest (pip)"
    local pip=(python3 -m pip install --quiet --disable-pip-version-check)
    "${pip[@]}" pytest 2>/dev/null ||
        as_root "${pip[@]}" --break-system-packages pytest ||
        { as_root apt-get update -qq &&
            as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3-pytest; }
    python3 -c 'import pytest'
}

# What scripts/test runs: the bindings into the target directory (the tests reuse
# them), then two devices through the Python bindings against the real relay.
mobile_test() {
    mobile_bindings "$(mobile_target_dir)/bindings"
    install_pytest
    log "mobile bindings: end-to-end test (Python)"
    python3 -m pytest -q -p no:cacheprovider mobile-bindings/tests
}
