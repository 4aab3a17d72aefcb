"""cluster.yaml is a valid Ray cluster-launcher config.

Checked offline with Ray's own tooling: the JSON schema shipped in ``ray/autoscaler`` and
``prepare_config`` + ``validate_config`` (the steps ``ray up`` runs before it calls the cloud
provider). Neither needs cloud credentials; the AWS-specific bootstrap (key pairs, subnets,
AMI lookup) that ``ray up`` does afterwards is not exercised here.
"""
from __future__ import annotations

import copy
import json
from pathlib import Path

import jsonschema
import pytest
import yaml

import ray.autoscaler
from ray.autoscaler._private.util import prepare_config, validate_config

ROOT = Path(__file__).resolve().parents[1]
CLUSTER_YAML = ROOT / "cluster.yaml"
SCHEMA = Path(ray.autoscaler.__file__).parent / "ray-schema.json"


@pytest.fixture(scope="module")
def config() -> dict:
    with open(CLUSTER_YAML) as f:
        return yaml.safe_load(f)


def test_matches_ray_schema(config):
    schema = json.loads(SCHEMA.read_text())
    errors = list(jsonschema.Draft7Validator(schema).iter_errors(config))
    assert errors == [], [e.message for e in errors]


def test_prepare_and_validate_offline(config, monkeypatch):
    # Make any accidental AWS call fail loudly instead of hanging on the metadata service.
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    prepared = prepare_config(copy.deepcopy(config))
    validate_config(prepared)
    assert prepared["head_node_type"] == "head"
    assert prepared["available_node_types"]["head"]["max_workers"] == 0
    # setup_commands are merged into the head/worker lists by prepare_config
    assert any("pip install" in c and "-e ." in c for c in prepared["head_setup_commands"])
    assert any("pip install" in c and "-e ." in c for c in prepared["worker_setup_commands"])


def test_aws_provider_and_node_types(config):
    provider = config["provider"]
    assert provider["type"] == "aws"
    assert provider["region"] and provider["availability_zone"]
    assert config["auth"]["ssh_user"]
    types = config["available_node_types"]
    head = types[config["head_node_type"]]
    assert head["node_config"]["InstanceType"] == "m5.2xlarge"
    assert "GPU" not in head["resources"]
    gpu = types["gpu_worker"]
    assert gpu["node_config"]["InstanceType"] == "g5.xlarge"
    assert gpu["resources"] == {"CPU": 4, "GPU": 1}
    assert 0 <= gpu["min_workers"] <= gpu["max_workers"] <= config["max_workers"]


def test_resources_are_integers(config):
    for name, node_type in config["available_node_types"].items():
        for key, value in node_type["resources"].items():
            assert type(value) is int, f"{name}.resources.{key} must be an int, got {value!r}"


def test_schema_rejects_fractional_gpu(config):
    """The integer check above is the one Ray's schema enforces too."""
    bad = copy.deepcopy(config)
    bad["available_node_types"]["gpu_worker"]["resources"]["GPU"] = 0.5
    with pytest.raises(jsonschema.ValidationError):
        validate_config(prepare_config(bad))


def test_installs_archtune_and_enables_token_auth(config):
    assert config["file_mounts"]["~/archtune"] == "."
    assert any("pip install" in c and "-e ." in c for c in config["setup_commands"])
    for key in ("head_start_ray_commands", "worker_start_ray_commands"):
        start = [c for c in config[key] if "ray start" in c]
        assert start and all("RAY_AUTH_MODE=token" in c for c in start), key
    head_start = " ".join(config["head_start_ray_commands"])
    assert "--autoscaling-config=~/ray_bootstrap_config.yaml" in head_start
    assert "$RAY_HEAD_IP:6379" in " ".join(config["worker_start_ray_commands"])


def test_documents_shared_storage():
    text = CLUSTER_YAML.read_text()
    assert "storage: s3://" in text and "storage: /mnt/" in text
