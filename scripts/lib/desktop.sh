# The desktop app (desktop-app/): what it needs to build and be tested, its screens
# (Svelte, built by Vite), its unit tests and its end-to-end tests in a real window.
# Sourced after common.sh, by scripts/test and scripts/run.

# Debian packages: Tauri v2 on WebKitGTK (webkit2gtk 4.1, gtk3, librsvg, libsoup3, xdo
# for menus); for the real-window tests Xvfb, WebKitWebDriver (webkit2gtk-driver) and
# ImageMagick (test photos, and scripts/run's screenshot of the whole screen), x11-utils
# (scripts/run waits for the window with xdpyinfo and xwininfo); a CJK
# font and an emoji font so Korean and moods render; GStreamer's plugins so the web
# view can record (WebM/Opus) and play (MP3) voice messages.
DESKTOP_APT_PACKAGES=(
    libwebkit2gtk-4.1-dev libjavascriptcoregtk-4.1-dev libgtk-3-dev librsvg2-dev
    libsoup-3.0-dev libxdo-dev libssl-dev build-essential file
    xvfb xauth x11-utils webkit2gtk-driver imagemagick
    fonts-nanum fonts-noto-color-emoji
    gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-bad
)

DESKTOP_UI=desktop-app/ui
DESKTOP_TOOLS="$HOME/.cache/dorandoran/tools"

# Installs what is missing (Debian packages, Node.js, tauri-driver), then builds the
# screens: `npm ci` from the committed lock file (skipped when node_modules already
# matches it), `vite build` into desktop-app/ui/dist, which the app embeds.
desktop_prepare() {
    local started=$SECONDS
    local saved=("${DORAN_APT_PACKAGES[@]}")
    DORAN_APT_PACKAGES=("${DESKTOP_APT_PACKAGES[@]}")
    command -v node >/dev/null && command -v npm >/dev/null || DORAN_APT_PACKAGES+=(nodejs npm)
    install_apt_packages
    DORAN_APT_PACKAGES=("${saved[@]}")

    if [ ! -x "$DESKTOP_TOOLS/bin/tauri-driver" ]; then
        log "installing tauri-driver into $DESKTOP_TOOLS"
        cargo install tauri-driver --locked --root "$DESKTOP_TOOLS"
    fi

    local stamp="$DESKTOP_UI/node_modules/.doran-lock-sha"
    local want
    want=$(sha256sum "$DESKTOP_UI/package-lock.json" | cut -d' ' -f1)
    if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
        log "npm ci (desktop app screens)"
        (cd "$DESKTOP_UI" && npm ci --no-audit --no-fund --loglevel=error)
        echo "$want" > "$stamp"
    fi
    log "building the desktop app's screens (vite)"
    (cd "$DESKTOP_UI" && npm run --silent build -- --logLevel warn)
    log "desktop app prepared in $((SECONDS - started)) s"
}

# The target directory cargo builds into.
desktop_target_dir() {
    cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])'
}

# Front-end checks and unit tests (svelte-check, vitest), then the end-to-end tests:
# the debug app in a real window under Xvfb, driven by tauri-driver + WebKitWebDriver,
# against the real relay, with the `doran` command line as the rest of the family.
# Screenshots of every main screen go to docs/screenshots/.
desktop_test() {
    local started=$SECONDS
    log "desktop app: type check and unit tests (svelte-check, vitest)"
    (cd "$DESKTOP_UI" && npm run --silent check && npx vitest run --reporter=dot)

    log "desktop app: building the app, the relay and the CLI (debug)"
    # The whole workspace, not -p: the same feature resolution as the test build, so
    # the dependencies it compiled are reused instead of compiled again.
    cargo build --locked --workspace
    local bin shots
    bin="$(desktop_target_dir)/debug"
    # Screenshots go beside the build, so a test run leaves the checkout clean;
    # DORAN_UPDATE_SCREENSHOTS=1 writes the committed ones in docs/screenshots/.
    shots="$(desktop_target_dir)/screenshots"
    [ "${DORAN_UPDATE_SCREENSHOTS:-0}" = 1 ] && shots="$PWD/docs/screenshots"
    mkdir -p "$shots"
    log "desktop app: end-to-end tests in a real window (Xvfb, tauri-driver, WebKitWebDriver); screenshots in $shots"
    (cd "$DESKTOP_UI" && \
        DORAN_APP="$bin/dorandoran" DORAN_BIN="$bin" TAURI_DRIVER="$DESKTOP_TOOLS/bin/tauri-driver" \
        DORAN_SCREENSHOTS="$shots" \
        xvfb-run -a -s "-screen 0 1280x900x24" npm run --silent e2e)
    log "desktop app checks and tests passed in $((SECONDS - started)) s"
}

# Starts the app (release, from `bin`) against the relay at `server`, its device home
# under `data`. With a display it opens the window; with none it runs the app under
# Xvfb, saves a screenshot of the screen and says where. Sets DESKTOP_PIDS.
desktop_run() {
    local bin=$1 server=$2 data=$3
    local home="$data/desktop"
    mkdir -p "$home"
    DESKTOP_PIDS=()
    if [ -n "${DISPLAY:-}" ]; then
        log "starting the desktop app (device home $home)"
        DORAN_HOME="$home" DORAN_SERVER="$server" "$bin/dorandoran" > "$data/desktop.log" 2>&1 &
        DESKTOP_PIDS+=($!)
        return
    fi
    local display=":$((90 + RANDOM % 100))"
    log "no display: running the desktop app under Xvfb on $display"
    Xvfb "$display" -screen 0 1280x860x24 -nolisten tcp > "$data/xvfb.log" 2>&1 &
    DESKTOP_PIDS+=($!)
    for _ in $(seq 1 50); do
        DISPLAY="$display" xdpyinfo > /dev/null 2>&1 && break
        sleep 0.1
    done
    DISPLAY="$display" DORAN_HOME="$home" DORAN_SERVER="$server" "$bin/dorandoran" > "$data/desktop.log" 2>&1 &
    DESKTOP_PIDS+=($!)
    # Wait for the window to be mapped, then for its first screen: the page shows a
    # plain "loading" screen first (about a hundred colours), the first screen has
    # thousands (gradients, the logo). At most 30 s on a busy machine.
    for _ in $(seq 1 100); do
        DISPLAY="$display" xwininfo -root -tree 2>/dev/null | grep -qi 'dorandoran' && break
        sleep 0.1
    done
    local shot="$data/desktop-screenshot.png"
    for _ in $(seq 1 60); do
        sleep 0.5
        DISPLAY="$display" import -window root "$shot"
        [ "$(identify -format '%k' "$shot" 2>/dev/null || echo 0)" -gt 1000 ] && break
    done
    log "the desktop app runs under Xvfb ($display); its screen is in $shot"
}
