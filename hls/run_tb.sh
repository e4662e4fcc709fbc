#!/bin/sh
# Runs a C-simulation testbench inside its folder (it reads tb_data/ from there) and, when a signal
# kills it, says so in one line on stderr rather than leaving only make's "Error 139".
# When HLS_DIR sits in a folder written by dmxgen export, the result is recorded in its
# verify/hls_csim.json (the HLS rung of `dmxgen report`'s verification ladder).
# Usage: sh run_tb.sh HLS_DIR PROGRAM. Exits with the testbench's status (128 + signal on a crash).
cd "$1" || exit 2
"$2"
rc=$?
record() {
    out=$(dirname "$1")
    [ -f "$out/manifest.json" ] || return 0
    if [ "$rc" -eq 0 ]; then exact=true; detail="g++ C simulation: bit-exact"; else exact=false; detail="g++ C simulation failed (exit status $rc)"; fi
    tmp="$out/verify/.hls_csim.json.$$"
    if mkdir -p "$out/verify" 2>/dev/null &&
       printf '{\n  "step": "hls_csim",\n  "bit_exact": %s,\n  "detail": "%s"\n}\n' "$exact" "$detail" > "$tmp" 2>/dev/null &&
       mv -f "$tmp" "$out/verify/hls_csim.json" 2>/dev/null; then
        return 0
    fi
    rm -f "$tmp" 2>/dev/null
    echo "csim: warning: result not recorded in $out/verify/" >&2
}
record "$1"
if [ "$rc" -gt 128 ]; then
    sig=$((rc - 128))
    case $sig in
        4) what="illegal instruction" ;;
        6) what="aborted" ;;
        7) what="bus error" ;;
        8) what="floating-point exception" ;;
        9) what="killed" ;;
        11) what="segmentation fault" ;;
        *) what="SIG$(kill -l "$sig" 2>/dev/null)" ;;
    esac
    echo "csim crashed: signal $sig ($what) in $2; rebuild with SANITIZE=1 to see where" >&2
fi
exit "$rc"
