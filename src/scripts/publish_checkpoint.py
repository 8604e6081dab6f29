"""Upload a renderer package to the Hugging Face Hub (needs `huggingface-cli login` or HF_TOKEN).

uv run python -m src.scripts.publish_checkpoint runs/cpu_tiny/package --repo-id you/velodream-tiny
"""

from __future__ import annotations

import dataclasses

from src.common.config import parse_config
from src.common.errors import UserError, script_main
from src.play.fetch import check_package


@dataclasses.dataclass
class PublishConfig:
    """``publish_checkpoint``: which package to upload to which hub repository."""

    package: str = ""
    """the renderer package directory to upload"""
    repo_id: str = ""
    """the hub repository, owner/name (created if missing)"""
    private: bool = False
    """create the hub repository as private"""
    revision: str | None = None
    """branch to push to (default: main)"""
    commit_message: str = "Upload Velodream renderer package"
    """the commit message of the upload"""


def _is_network_error(error: Exception) -> bool:
    """Offline mode, no network, DNS: an OSError, or an error of the HTTP client the hub library
    talks through (requests, httpx or httpx2 by its version), none of which is ours to import."""
    client = type(error).__module__.split(".")[0]
    return isinstance(error, OSError) or client in ("requests", "urllib3", "httpx", "httpx2", "httpcore")


@script_main
def main(argv: list[str] | None = None) -> None:
    config = parse_config(
        PublishConfig, argv, prog="publish_checkpoint", description=__doc__, positional=["package"]
    )
    if not config.package or not config.repo_id:
        raise UserError(
            "a package and --repo-id are required", "Usage: publish_checkpoint PACKAGE --repo-id OWNER/NAME"
        )
    package = check_package(config.package)
    # huggingface_hub (and the httpx it talks through) load only for an upload: a fast --help
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError, HFValidationError
    from huggingface_hub.utils import validate_repo_id

    from src.common.outputs import NOT_PUBLISHED

    try:
        validate_repo_id(config.repo_id)
    except HFValidationError as error:
        raise UserError(
            f"invalid --repo-id {config.repo_id!r}: {str(error).splitlines()[0]}",
            "Write it as OWNER/NAME (letters, digits, '-', '_', '.').",
        ) from None

    api = HfApi()
    try:
        api.create_repo(config.repo_id, repo_type="model", private=config.private, exist_ok=True)
        info = api.upload_folder(
            repo_id=config.repo_id,
            folder_path=package,
            revision=config.revision,
            commit_message=config.commit_message,
            allow_patterns=["*.json", "*.safetensors", "*.md", "*.png", "ncnn/*"],
            ignore_patterns=NOT_PUBLISHED,  # markers and staging folders: never part of a package
        )
    except HfHubHTTPError as error:
        raise UserError(
            f"uploading to {config.repo_id} failed: {str(error).splitlines()[0]}",
            "Log in with `huggingface-cli login` or set HF_TOKEN.",
        ) from None
    except Exception as error:
        if not _is_network_error(error):
            raise
        raise UserError(
            f"cannot reach the Hugging Face Hub to upload {config.repo_id}: {str(error).splitlines()[0]}",
            "Check the connection (and that HF_HUB_OFFLINE is not set).",
        ) from None
    print(
        f"published {package} to hf://{config.repo_id} ({info.commit_url if hasattr(info, 'commit_url') else info})"
    )


if __name__ == "__main__":
    main()
