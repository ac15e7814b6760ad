#!/bin/sh
# Use the data set mounted from ./data when there is one; otherwise the data
# API builds it from the UCI download, cached in the data-cache volume.
set -eu
if [ -z "${FORESTOPS_DATA_PATH:-}" ]; then
    for candidate in /data/covertype.csv /data/covertype.csv.gz; do
        if [ -f "$candidate" ]; then
            FORESTOPS_DATA_PATH="$candidate"
            export FORESTOPS_DATA_PATH
            break
        fi
    done
fi
exec "$@"
