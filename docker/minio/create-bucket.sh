#!/bin/sh
# Idempotent MinIO setup for MLflow: the artefact bucket, and a user for the
# MLflow server whose policy reaches only that bucket. Safe to run on every
# `docker compose up` (the minio-init job does).
set -eu
: "${MINIO_ROOT_USER:?}" "${MINIO_ROOT_PASSWORD:?}" "${MLFLOW_S3_ACCESS_KEY:?}" "${MLFLOW_S3_SECRET_KEY:?}"
bucket="${MLFLOW_BUCKET:-mlflow}"

mc alias set local http://minio:9000 "$MINIO_ROOT_USER" "$MINIO_ROOT_PASSWORD"
mc mb --ignore-existing "local/$bucket"

# Only shell built-ins and mc: the mc image is minimal.
policy=/tmp/mlflow-artifacts-policy.json
printf '%s\n' \
    '{"Version": "2012-10-17", "Statement": [' \
    "  {\"Effect\": \"Allow\", \"Action\": [\"s3:ListBucket\", \"s3:GetBucketLocation\"], \"Resource\": [\"arn:aws:s3:::$bucket\"]}," \
    "  {\"Effect\": \"Allow\", \"Action\": [\"s3:GetObject\", \"s3:PutObject\", \"s3:DeleteObject\"], \"Resource\": [\"arn:aws:s3:::$bucket/*\"]}" \
    ']}' > "$policy"
mc admin policy create local mlflow-bucket-rw "$policy"
mc admin user add local "$MLFLOW_S3_ACCESS_KEY" "$MLFLOW_S3_SECRET_KEY"
# On a second run the policy is already attached: that is the one error to accept.
if ! output=$(mc admin policy attach local mlflow-bucket-rw --user "$MLFLOW_S3_ACCESS_KEY" 2>&1); then
    case "$output" in
        *"already in effect"*) ;;
        *) echo "$output" >&2; exit 1 ;;
    esac
fi
echo "bucket $bucket and user $MLFLOW_S3_ACCESS_KEY ready"
