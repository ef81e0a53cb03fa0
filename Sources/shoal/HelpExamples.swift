/// The `Examples:` section of every command's help, kept in one place so
/// the examples stay consistent with each other (and with the README).
/// Each command's `discussion` ends with its entry.
enum HelpExamples {
    /// An `Examples:` section: a comment line above each example, commands
    /// continued with `\\` so that no line is longer than 80 columns (help
    /// is wrapped at 80, which would break a command where it can't be
    /// pasted).
    static func section(_ examples: [(String, String)]) -> String {
        "Examples:\n" + examples.map { "  # \($0.0)\n" + wrap($0.1) }.joined(separator: "\n")
    }

    static func wrap(_ command: String, width: Int = 80) -> String {
        var lines: [String] = []
        var line = "  "
        // An option stays on one line with its value.
        var words: [String] = []
        for word in command.split(separator: " ").map(String.init) {
            if let last = words.last, last.hasPrefix("-"), !last.contains(" "), !word.hasPrefix("-"), word != "&&" {
                words[words.count - 1] += " " + word
            } else {
                words.append(word)
            }
        }
        for word in words {
            let indent = lines.isEmpty ? 2 : 6
            if line.count > indent && line.count + 1 + word.count + 2 > width {
                lines.append(line + " \\")
                line = String(repeating: " ", count: 6)
            } else if line.count > indent {
                line += " "
            }
            line += word
        }
        return (lines + [line]).joined(separator: "\n")
    }

    /// `text`, a blank line, then the examples.
    static func discussion(_ text: String, _ examples: [(String, String)]) -> String {
        text + "\n\n" + section(examples)
    }

    static let shoal = [
        ("A demo run on a simulated cluster: three nodes, monitoring, Headlamp", "shoal create -n 3"),
        ("What ran, and how each step went", "shoal list && shoal status k3s-dev-3f9a1c"),
        ("Help on one command", "shoal help create"),
    ]

    static let create = [
        ("A demo run with the defaults (one node, monitoring, Headlamp)", "shoal create"),
        ("What a real run would do, without doing it", "shoal create --real-deployment --dry-run"),
        (
            "Production needs three nodes; each simulated step lasts a second",
            "shoal create -n 3 -e production --sim-delay 1s"
        ),
        ("Plain lines even on a terminal, with each step's log", "shoal create --progress plain -v"),
        ("Only the workflow id and the result, for a script", "shoal create -q"),
        ("A real cluster on this machine", "shoal create --real-deployment --target local"),
        ("Submit to a coordinator on another host and return at once",
         "shoal create -n 3 --coordinator tcp://10.0.0.5:7401 --key ~/.shoal/keys/alice.key --detach"),
    ]

    static let status = section([
        ("A workflow of an embedded run, from its journal", "shoal status k3s-dev-3f9a1c"),
        ("Follow it until it ends (the live table on a terminal)", "shoal status k3s-dev-3f9a1c -w"),
        ("A workflow on a running coordinator", "shoal status k3s-dev-3f9a1c --coordinator tcp://10.0.0.5:7401"),
        ("As JSON, for a script (docs/cli.md)", "shoal status k3s-dev-3f9a1c -o json"),
    ])

    static let list = section([
        ("The workflows of the embedded runs in ./output", "shoal list"),
        ("The workflows a coordinator knows", "shoal list --coordinator tcp://10.0.0.5:7401"),
        ("The ids of the runs in another directory", "shoal list -d ~/lab -o name"),
    ])

    static let validate = [
        ("Check a workflow's cluster again", "shoal validate k3s-dev-3f9a1c"),
        ("The report as JSON, for a script", "shoal validate k3s-dev-3f9a1c -o json"),
    ]

    static let destroy = [
        ("Tear down a workflow's cluster", "shoal destroy k3s-dev-3f9a1c"),
        ("A real deployment, from a script (no question asked)", "shoal destroy k3s-real-3f9a1c --yes"),
        ("After a crash, when the journal still says running", "shoal destroy k3s-dev-3f9a1c --force"),
    ]

    static let kubeconfig = [
        ("Point kubectl at a run's cluster", "export KUBECONFIG=$(shoal kubeconfig k3s-dev-3f9a1c)"),
        ("Add it to ~/.kube/config as the context lab", "shoal kubeconfig k3s-dev-3f9a1c --merge --context lab"),
        ("A run on a coordinator, into a file", "shoal kubeconfig k3s-dev-3f9a1c --coordinator tcp://10.0.0.5:7401 -p > kc"),
    ]

    static let credentials = [
        ("Who logs in where, and the files with the secrets", "shoal credentials k3s-dev-3f9a1c"),
        ("The Grafana admin password itself", "shoal credentials k3s-dev-3f9a1c grafana --show"),
    ]

    static let wait = section([
        (
            "Wait for a detached workflow, printing its steps",
            "shoal wait k3s-dev-3f9a1c --coordinator tcp://10.0.0.5:7401 --progress"
        ),
        ("Give up after half an hour", "shoal wait k3s-dev-3f9a1c --coordinator tcp://10.0.0.5:7401 --timeout 30m"),
    ])

    static let watch = [
        ("A workflow of the embedded run in ./output, until it ends", "shoal watch k3s-dev-3f9a1c"),
        (
            "A workflow on a coordinator, from any host",
            "shoal watch k3s-dev-3f9a1c --coordinator tcp://10.0.0.5:7401 --key ~/.shoal/keys/alice.key"
        ),
        ("The same with status", "shoal status k3s-dev-3f9a1c -w --coordinator tcp://10.0.0.5:7401"),
    ]

    static let cancel = section([
        ("Stop a running workflow", "shoal cancel k3s-dev-3f9a1c --coordinator tcp://10.0.0.5:7401"),
    ])

    static let gitops = section([
        ("Serve this host's repositories to a cluster", "shoal gitops serve --push-token-file ~/push-token"),
        ("Push a committed change of a run's repository", "shoal gitops push k3s-dev-3f9a1c"),
    ])

    static let gitopsServe = [
        ("Serve the repositories of output/gitops on port 7402", "shoal gitops serve"),
        ("Accept pushes that carry a token", "shoal gitops serve --push-token-file ~/push-token"),
    ]

    static let gitopsPush = [
        ("Push what you committed in output/gitops/WF", "shoal gitops push k3s-dev-3f9a1c"),
        ("Through a port-forward", "shoal gitops push k3s-dev-3f9a1c --push-url http://127.0.0.1:8080"),
    ]

    static let app = section([
        ("Deploy a chart as an application", "shoal app add k3s-dev-3f9a1c podinfo helm:https://stefanprodan.github.io/podinfo//podinfo@6.7.1"),
        ("Take it away again", "shoal app remove k3s-dev-3f9a1c podinfo"),
    ])

    static let appAdd = [
        ("A directory of the GitOps repository", "shoal app add k3s-dev-3f9a1c web examples/web"),
    ]

    static let appRemove = [
        ("Remove an application and let Argo CD prune it", "shoal app remove k3s-dev-3f9a1c web"),
    ]

    static let health = [
        ("Is the coordinator up?", "shoal health --coordinator tcp://127.0.0.1:7401"),
        ("Is this host's infra agent live?", "shoal health --coordinator tcp://127.0.0.1:7401 --role infra"),
    ]

    static let keysInit = [
        ("The keys of a single-host deployment", "shoal keys init /keys coordinator planner infra cli"),
    ]

    static let resume = [
        ("Finish an embedded run that was interrupted", "shoal resume k3s-dev-3f9a1c"),
        ("Run the failed steps of a workflow again", "shoal resume k3s-dev-3f9a1c --coordinator tcp://10.0.0.5:7401"),
    ]

    static let agents = section([
        ("The agents connected to a coordinator", "shoal agents --coordinator tcp://10.0.0.5:7401"),
    ])

    static let stats = section([
        ("A coordinator's counters", "shoal stats --coordinator tcp://10.0.0.5:7401"),
    ])

    static let coordinator = section([
        ("A coordinator with its key and allow-list in ~/.shoal",
         "shoal coordinator --key ~/.shoal/keys/coordinator.key --journal /var/lib/shoal/journal.sqlite"),
        (
            "The same, with Prometheus metrics on port 9464",
            "shoal coordinator --key ~/.shoal/keys/coordinator.key --metrics-listen 0.0.0.0:9464"
        ),
    ])

    static let agent = section([
        ("A validation agent on another host",
         "shoal agent validation --coordinator tcp://10.0.0.5:7401 --key ~/.shoal/keys/validation-1.key"
            + " --coordinator-key ~/.shoal/keys/coordinator.pub"),
    ])

    static let keys = [
        ("Keys for the coordinator and an agent", "shoal keys generate coordinator && shoal keys generate infra-1"),
        ("Allow the agent's key", "shoal keys allow ~/.shoal/keys/infra-1.pub"),
        ("Cut a peer off", "shoal keys revoke infra-1"),
    ]

    static let keysGenerate = section([
        ("A key pair in ~/.shoal/keys", "shoal keys generate infra-1"),
    ])

    static let keysList = section([
        ("The public keys the coordinator allows", "shoal keys list"),
    ])

    static let keysAllow = section([
        ("Allow a peer's public key", "shoal keys allow ~/.shoal/keys/infra-1.pub"),
    ])

    static let keysRevoke = section([
        ("Remove a key from the allow-list (its peer is cut off within a second)", "shoal keys revoke infra-1"),
    ])

    static let context = [
        (
            "A context for a lab: its coordinator, your keys, a directory for artifacts",
            "shoal context set lab --coordinator tcp://10.0.0.5:7401 --key ~/.shoal/keys/alice.key"
                + " --coordinator-key ~/.shoal/keys/coordinator.pub -d ~/lab"
        ),
        ("Then, from any directory, with no flags", "shoal status k3s-dev-3f9a1c"),
        ("What is in effect, and where each value came from", "shoal context show"),
    ]

    static let contextList = section([
        ("The contexts of the config file", "shoal context list"),
        ("Their names only", "shoal context list -o name"),
    ])

    static let contextUse = section([
        ("Make lab the current context", "shoal context use lab"),
    ])

    static let contextSet = [
        (
            "A context with defaults for create",
            "shoal context set lab --coordinator tcp://10.0.0.5:7401 --environment staging --nodes 3"
        ),
        ("Remove a setting", "shoal context set lab --unset dir"),
    ]

    static let contextShow = section([
        ("Each setting, its value and its source", "shoal context show"),
        ("The same for a script", "shoal context show -o json"),
    ])

    static let contextDelete = section([
        ("Delete a context", "shoal context delete lab"),
    ])

    static let version = section([
        ("shoal's, the protocol's and libzmq's versions", "shoal version"),
    ])

    static let report = [
        ("The report of a run, in output/reports/WORKFLOW/index.html", "shoal report k3s-dev-3f9a1c"),
        ("A workflow on a running coordinator", "shoal report k3s-dev-3f9a1c --coordinator tcp://10.0.0.5:7401"),
    ]

    static let completion = [
        ("bash, for this shell", "source <(shoal completion bash)"),
        ("zsh, installed for good", "shoal completion zsh > \"${fpath[1]}/_shoal\""),
        ("fish", "shoal completion fish > ~/.config/fish/completions/shoal.fish"),
    ]
}
