"""Real deployment tooling for tests/deploy_*.rs, answering in JSON on stdout.

    tools.py render CHART_DIR [VALUES_JSON]   Helm renders and lints the chart; every rendered
                                              object is checked against the Kubernetes schemas
    tools.py dockerfile PATH                  BuildKit's parser reads the Dockerfile

The packages are pinned in requirements.txt beside this file (`.ci/run` installs them).
"""

import json
import sys

# The Kubernetes version whose schemas the rendered objects must satisfy.
KUBE_VERSION = "1.33.0"
RELEASE = "demo"
NAMESPACE = "shop"


def need(module):
    try:
        return __import__(module)
    except ImportError as err:
        sys.exit(
            f"{err}: install the deploy test tools with "
            "`python3 -m pip install -r tests/deploy/requirements.txt` (.ci/run does)"
        )


def render(chart_dir, values_json=None):
    helm = need("helm_python")
    kubernetes_validate = need("kubernetes_validate")
    yaml = need("yaml")
    values = json.loads(values_json) if values_json else None
    with helm.Chart.load(chart_dir) as chart:
        manifests = chart.render(values, name=RELEASE, namespace=NAMESPACE, is_install=True)
    lint = helm.lint(chart_dir, values, strict=True, namespace=NAMESPACE, kube_version="v" + KUBE_VERSION)
    checked, skipped, errors = [], [], []
    for template, text in sorted(manifests.items()):
        if not template.endswith((".yaml", ".yml")):
            continue
        for doc in yaml.safe_load_all(text):
            if not doc:
                continue
            kind = f"{doc.get('apiVersion')}/{doc.get('kind')}"
            try:
                kubernetes_validate.validate(doc, KUBE_VERSION, strict=True)
                checked.append(kind)
            except kubernetes_validate.SchemaNotFoundError:
                # Custom resources (the ServiceMonitor) have no schema in the Kubernetes API.
                skipped.append(kind)
            except kubernetes_validate.ValidationError as err:
                path = "/".join(str(p) for p in err.absolute_path)
                errors.append(f"{template}: {kind} at /{path}: {err.message}")
    return {
        "helm_version": helm.helm_sdk_version(),
        "release": RELEASE,
        "namespace": NAMESPACE,
        "manifests": manifests,
        "lint": lint,
        "schema": {
            "kube_version": KUBE_VERSION,
            "checked": checked,
            "skipped": skipped,
            "errors": errors,
        },
    }


def dockerfile(path):
    parser = need("dockerfile")
    return {
        "instructions": [
            {
                "cmd": c.cmd.upper(),
                "flags": list(c.flags),
                "value": list(c.value),
                "line": c.start_line,
                "original": c.original,
            }
            for c in parser.parse_file(path)
        ]
    }


def main():
    if len(sys.argv) >= 3 and sys.argv[1] == "render":
        answer = render(sys.argv[2], sys.argv[3] if len(sys.argv) > 3 else None)
    elif len(sys.argv) == 3 and sys.argv[1] == "dockerfile":
        answer = dockerfile(sys.argv[2])
    else:
        sys.exit(__doc__)
    json.dump(answer, sys.stdout)


if __name__ == "__main__":
    main()
