#!/bin/sh
# Idempotent MinIO setup for MLflow: the artefact bucket, and a user for the
# MLflow server whose policy reaches only that bucket. Safe to run on every
# `docker compose up` (the minio-init job does).
set -eu
: "${MINIO_ROOT_USER:?}" "${MINIO_ROOT_PASSWORD:?}" "${MLFLOW_S3_ACCESS_KEY:?}" "${MLFLOW_S3_SECRET_KEY:?}"
bucket="${MLFLOW_BUCKET:-mlflow}"

mc alias set local http://minio:9000 "$MINIO_ROOT_USER" "$MINIO_ROOT_PASSWORD"
mc mb --ignore-existing "local/$bucket"

cat > /tmp/mlflow-artifacts-policy.json <<JSON
{
  "Version": "2012-10-17",
  "Statement": [
    {"Effect": "Allow", "Action": ["s3:ListBucket", "s3:GetBucketLocation"], "Resource": ["arn:aws:s3:::$bucket"]},
    {"Effect": "Allow", "Action": ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"], "Resource": ["arn:aws:s3:::$bucket/*"]}
  ]
}
JSON
mc admin policy create local mlflow-artifacts /tmp/mlflow-artifacts-policy.json
mc admin user add local "$MLFLOW_S3_ACCESS_KEY" "$MLFLOW_S3_SECRET_KEY"
if ! mc admin user info local "$MLFLOW_S3_ACCESS_KEY" | grep -q mlflow-artifacts; then
    mc admin policy attach local mlflow-artifacts --user "$MLFLOW_S3_ACCESS_KEY"
fi
echo "bucket $bucket and user $MLFLOW_S3_ACCESS_KEY ready"
