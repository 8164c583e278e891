#!/usr/bin/env bash
# FFmpeg's shared libraries, which torchcodec (and so `datasets` >= 4) needs to decode audio.
# Best effort: installs with apt-get when it is missing and we may; otherwise says what to do.
set -u
if ldconfig -p 2>/dev/null | grep -q 'libavutil\.so'; then
  exit 0
fi
if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = "0" ]; then
  echo "installing FFmpeg's shared libraries (for decoding audio with datasets/torchcodec)"
  apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    libavutil57 libavcodec59 libavformat59 libavdevice59 libavfilter8 libswscale6 libswresample4 >/dev/null \
    || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends ffmpeg >/dev/null \
    || echo "warning: could not install FFmpeg; tests that decode audio through datasets will be skipped"
else
  echo "note: FFmpeg's shared libraries are missing; decoding audio with datasets needs them" \
       "(apt install ffmpeg / brew install ffmpeg / conda install ffmpeg)"
fi
exit 0
