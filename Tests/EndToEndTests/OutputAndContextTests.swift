import Foundation
import ShoalSupport
import Testing
import Yams

/// `-o FORMAT` (table, wide, json, yaml, name), `-d DIR`, and contexts, with the real executable: an embedded run's
/// journal and a real coordinator.
extension EndToEndCommands {
    @Suite struct OutputAndContextTests {
        func describe(_ result: ProcessResult) -> String {
            "status \(result.status)\nstdout: \(result.standardOutput)\nstderr: \(result.standardError)"
        }

        /// A config directory of its own, so that no context of the machine's user is read.
        static func isolated(_ directory: String, _ more: [String: String] = [:]) -> [String: String] {
            [
                "XDG_CONFIG_HOME": directory + "/config-home", "HOME": directory + "/home", "SHOAL_DIR": "",
                "SHOAL_COORDINATOR": "", "SHOAL_KEY": "", "SHOAL_COORDINATOR_KEY": "",
            ].merging(more) { $1 }
        }

        func run(
            _ arguments: [String], in directory: String? = nil, environment: [String: String]
        ) async throws -> ProcessResult {
            try await ProcessRunner().run(
                Shoal.executable, arguments, workingDirectory: directory, environment: environment,
                timeout: .seconds(90))
        }

        func json(_ result: ProcessResult) throws -> [String: Any] {
            let object = try JSONSerialization.jsonObject(with: Data(result.standardOutput.utf8))
            return try #require(object as? [String: Any], "\(result.standardOutput)")
        }

        @Test func statusAndListPrintTheDocumentedJSONYAMLAndNamesOfAnEmbeddedRun() async throws {
            let directory = Shoal.temporaryDirectory()
            let environment = Self.isolated(directory)
            let output = directory + "/out"
            let created = try await run(["create", "-n", "1", "-d", output], environment: environment)
            #expect(created.status == 0, "\(describe(created))")
            let workflow = try #require(Shoal.workflowID(in: created.standardOutput))

            let status = try await run(["status", workflow, "-d", output, "-o", "json"], environment: environment)
            #expect(status.status == 0, "\(describe(status))")
            let document = try json(status)
            #expect(document["apiVersion"] as? String == "shoal/v1")
            #expect(document["kind"] as? String == "Workflow")
            #expect(document["id"] as? String == workflow)
            #expect(document["state"] as? String == "succeeded")
            for field in ["createdAt", "finishedAt", "durationMilliseconds", "revision", "request", "steps"] {
                #expect(document[field] != nil, "status -o json has \(field)")
            }
            let request = try #require(document["request"] as? [String: Any])
            #expect(request["nodes"] as? Int == 1 && request["environment"] as? String == "development")
            #expect(request["target"] as? String == "local" && request["realDeployment"] as? Bool == false)
            let steps = try #require(document["steps"] as? [[String: Any]])
            let plan = try #require(steps.first { $0["name"] as? String == "plan" })
            for field in ["role", "state", "attempt", "needs", "critical", "agent", "host", "pid", "startedAt",
                "finishedAt", "durationMilliseconds", "summary"]
            {
                #expect(plan[field] != nil, "a step has \(field): \(plan)")
            }
            #expect(plan["state"] as? String == "succeeded" && plan["role"] as? String == "planner")
            #expect((plan["startedAt"] as? String)?.hasSuffix("Z") == true, "RFC 3339 in UTC")

            let list = try await run(["list", "-d", output, "-o", "json"], environment: environment)
            let listed = try json(list)
            #expect(listed["kind"] as? String == "WorkflowList" && listed["apiVersion"] as? String == "shoal/v1")
            let items = try #require(listed["items"] as? [[String: Any]])
            #expect(items.map { $0["id"] as? String } == [workflow])
            #expect(items.first?["steps"] == nil, "list items carry no steps")
            #expect(items.first?["state"] as? String == "succeeded")

            let yaml = try await run(["list", "-d", output, "-o", "yaml"], environment: environment)
            #expect(yaml.status == 0, "\(describe(yaml))")
            let parsed = try #require(try Yams.load(yaml: yaml.standardOutput) as? [String: Any])
            #expect(parsed["kind"] as? String == "WorkflowList")
            let yamlItems = try #require(parsed["items"] as? [[String: Any]])
            #expect(yamlItems.first?["id"] as? String == workflow)
            let statusYAML = try await run(["status", workflow, "-d", output, "-o", "yaml"], environment: environment)
            let parsedStatus = try #require(try Yams.load(yaml: statusYAML.standardOutput) as? [String: Any])
            #expect((parsedStatus["steps"] as? [Any])?.count == steps.count, "YAML holds the same data as JSON")

            let names = try await run(["list", "-d", output, "-o", "name"], environment: environment)
            #expect(names.standardOutput == workflow + "\n", "\(describe(names))")
            let statusName = try await run(["status", workflow, "-d", output, "-o", "name"], environment: environment)
            #expect(statusName.standardOutput == workflow + "\n")
            let wide = try await run(["list", "-d", output, "-o", "wide"], environment: environment)
            #expect(wide.standardOutput.contains("TARGET") && wide.standardOutput.contains("demo"))

            // SHOAL_DIR stands in for -d; -d wins over it.
            let fromEnvironment = try await run(
                ["list", "-o", "name"], environment: Self.isolated(directory, ["SHOAL_DIR": output]))
            #expect(fromEnvironment.standardOutput == workflow + "\n", "\(describe(fromEnvironment))")
            let flagWins = try await run(
                ["list", "-d", directory + "/nowhere"], environment: Self.isolated(directory, ["SHOAL_DIR": output]))
            #expect(flagWins.status != 0 && flagWins.standardError.contains("nowhere"), "\(describe(flagWins))")

            // logs: the steps' logs as a document, and the steps that have one.
            let logs = try await run(["logs", workflow, "provision", "-d", output, "-o", "json"], environment: environment)
            let logDocument = try json(logs)
            #expect(logDocument["kind"] as? String == "StepLogList" && logDocument["workflow"] as? String == workflow)
            let logItems = try #require(logDocument["items"] as? [[String: Any]])
            #expect(logItems.map { $0["step"] as? String } == ["provision"], "\(logItems)")
            #expect((logItems.first?["lines"] as? [String])?.contains { $0.contains("terraform") } == true)
            for field in ["attempt", "agent", "host", "outcome", "dropped"] {
                #expect(logItems.first?[field] != nil, "a step log has \(field)")
            }
            let logNames = try await run(["logs", workflow, "-d", output, "-o", "name"], environment: environment)
            #expect(logNames.standardOutput.split(separator: "\n").contains("plan"), "\(describe(logNames))")
            let followed = try await run(["logs", workflow, "-f", "-d", output, "-o", "json"], environment: environment)
            #expect(followed.status == 64, "\(describe(followed))")

            // validate: -o json is the report with its envelope; --json is the same document.
            let report = try await run(["validate", workflow, "-d", output, "-o", "json"], environment: environment)
            let health = try json(report)
            #expect(health["kind"] as? String == "HealthReport" && health["workflow"] as? String == workflow)
            #expect(health["score"] as? Int == 100 && (health["checks"] as? [Any])?.isEmpty == false)
            let alias = try await run(["validate", workflow, "-d", output, "--json"], environment: environment)
            #expect(try json(alias)["kind"] as? String == "HealthReport")
            let checkNames = try await run(["validate", workflow, "-d", output, "-o", "name"], environment: environment)
            #expect(checkNames.standardOutput.split(separator: "\n").contains("nodes"), "\(describe(checkNames))")
        }

        @Test func anUnknownFormatAndAnOldDirectoryValueAreRefusedInOneLineWithExit64() async throws {
            let directory = Shoal.temporaryDirectory()
            let environment = Self.isolated(directory)
            for (arguments, message) in [
                (["list", "-o", "xml"], "unknown output format 'xml'; use one of table, wide, json, yaml, name"),
                (["status", "k3s-dev-000001", "--output", "JSON"], "unknown output format 'JSON'"),
                (["list", "-o", "output"], "-o is the output format now"),
                (["status", "k3s-dev-000001", "-o", "./lab"], "the output directory is -d/--dir"),
                (["destroy", "k3s-dev-000001", "-o", directory], "the output directory is -d/--dir"),
                (["create", "--output=/tmp/x"], "-o is the output format now"),
                (["stats", "--coordinator", "tcp://127.0.0.1:9", "--insecure", "-o", "name"], "-o name: stats"),
                (["create", "-o", "json"], "-o/--output goes with --detach"),
            ] {
                let result = try await run(arguments, environment: environment)
                #expect(result.status == 64, "\(arguments): \(describe(result))")
                #expect(result.standardError.contains(message), "\(arguments): \(result.standardError)")
                if !message.contains("--detach") {
                    #expect(result.standardError.split(separator: "\n").count == 1, "one line: \(result.standardError)")
                }
                #expect(result.standardOutput.isEmpty, "\(arguments)")
            }
        }

        @Test func agentsStatsAndStatusOfARunningCoordinatorAsJSONYAMLAndNames() async throws {
            let lab = try RemoteLab()
            defer { lab.stopAll() }
            try lab.startAgent("planner", id: "planner-1")
            let environment = Self.isolated(lab.directory)
            // The agent is listed once its first heartbeat arrived.
            var agents: [[String: Any]] = []
            let deadline = ContinuousClock.now + .seconds(30)
            while ContinuousClock.now < deadline {
                let result = try await run(["agents", "-o", "json"] + lab.client, environment: environment)
                #expect(result.status == 0, "\(describe(result))")
                let document = try json(result)
                #expect(document["kind"] as? String == "AgentList" && document["apiVersion"] as? String == "shoal/v1")
                agents = document["items"] as? [[String: Any]] ?? []
                if !agents.isEmpty { break }
                try await Task.sleep(for: .milliseconds(200))
            }
            let agent = try #require(agents.first, "planner-1 registered")
            #expect(agent["id"] as? String == "planner-1" && agent["role"] as? String == "planner")
            for field in ["host", "pid", "subscribed", "inFlight", "lastHeartbeat", "lastHeartbeatAgeMilliseconds",
                "rejected"]
            {
                #expect(agent[field] != nil, "an agent has \(field): \(agent)")
            }
            let names = try await run(["agents", "-o", "name"] + lab.client, environment: environment)
            #expect(names.standardOutput == "planner-1\n", "\(describe(names))")
            let yaml = try await run(["agents", "-o", "yaml"] + lab.client, environment: environment)
            let parsed = try #require(try Yams.load(yaml: yaml.standardOutput) as? [String: Any])
            #expect((parsed["items"] as? [[String: Any]])?.first?["id"] as? String == "planner-1")

            let submitted = try await run(
                ["create", "--detach", "-o", "json"] + lab.client, environment: environment)
            #expect(submitted.status == 0, "\(describe(submitted))")
            let submission = try json(submitted)
            #expect(submission["kind"] as? String == "Submission" && submission["coordinator"] as? String == lab.control)
            let workflow = try #require(submission["workflow"] as? String)
            let detachedName = try await run(["create", "--detach", "-o", "name"] + lab.client, environment: environment)
            #expect(detachedName.standardOutput.hasPrefix("k3s-dev-") && detachedName.standardOutput.hasSuffix("\n"))

            let status = try await run(["status", workflow, "-o", "json"] + lab.client, environment: environment)
            #expect(status.status == 0, "\(describe(status))")
            let document = try json(status)
            #expect(document["kind"] as? String == "Workflow" && document["id"] as? String == workflow)
            #expect(document["state"] as? String == "running" && document["finishedAt"] == nil)

            let list = try await run(["list", "-o", "name"] + lab.client, environment: environment)
            #expect(Set(list.standardOutput.split(separator: "\n").map(String.init)).contains(workflow))

            let stats = try await run(["stats", "-o", "json"] + lab.client, environment: environment)
            let counters = try json(stats)
            #expect(counters["kind"] as? String == "Stats" && counters["apiVersion"] as? String == "shoal/v1")
            #expect((counters["workflows"] as? Int ?? 0) >= 2 && (counters["agents"] as? Int ?? 0) >= 1, "\(counters)")
            #expect(counters["running"] != nil && counters["residentBytes"] != nil && counters["rejected"] != nil)
            let statsYAML = try await run(["stats", "-o", "yaml"] + lab.client, environment: environment)
            #expect((try Yams.load(yaml: statsYAML.standardOutput) as? [String: Any])?["kind"] as? String == "Stats")

            // keys list, on the lab's allow-list.
            let keys = try await run(["keys", "list", "--allow", lab.keys + "/allow", "-o", "json"], environment: environment)
            let keyItems = try #require(try json(keys)["items"] as? [[String: Any]])
            #expect(Set(keyItems.compactMap { $0["name"] as? String }) == ["agents", "client"])
            #expect(keyItems.allSatisfy { $0["publicKey"] != nil && $0["file"] != nil })
            let keyNames = try await run(["keys", "list", "--allow", lab.keys + "/allow", "-o", "name"], environment: environment)
            #expect(keyNames.standardOutput == "agents\nclient\n", "\(describe(keyNames))")
        }

        @Test func aContextLetsStatusRunWithNoFlagsFromAnyDirectory() async throws {
            let lab = try RemoteLab()
            defer { lab.stopAll() }
            let environment = Self.isolated(lab.directory)
            let submitted = try await run(["create", "--detach"] + lab.client, environment: environment)
            #expect(submitted.status == 0, "\(describe(submitted))")
            let workflow = submitted.standardOutput.trimmingCharacters(in: .whitespacesAndNewlines)

            // Relative key paths given to `set` are stored absolute: it runs in the lab's directory.
            let set = try await run(
                ["context", "set", "lab", "--coordinator", lab.control, "--key", "keys/client.key",
                 "--coordinator-key", "keys/coordinator.pub", "-d", "lab-output"],
                in: lab.directory, environment: environment)
            #expect(set.status == 0, "\(describe(set))")
            #expect(set.standardOutput.contains("context lab created") && set.standardOutput.contains("(current)"))
            let file = lab.directory + "/config-home/shoal/config.yaml"
            #expect(SecureFile.mode(of: file) == 0o600, "the config file is 0600")
            let text = try String(contentsOfFile: file, encoding: .utf8)
            #expect(text.contains("key: \(lab.keys)/client.key"), "\(text)")

            let elsewhere = Shoal.temporaryDirectory()
            let status = try await run(["status", workflow], in: elsewhere, environment: environment)
            #expect(status.status == 0, "\(describe(status))")
            #expect(status.standardOutput.contains("workflow \(workflow): running"), "\(describe(status))")
            let list = try await run(["list", "-o", "name"], in: elsewhere, environment: environment)
            #expect(list.standardOutput.contains(workflow), "\(describe(list))")
            let agents = try await run(["agents"], in: elsewhere, environment: environment)
            #expect(agents.status == 0, "CoordinatorOption commands use the context: \(describe(agents))")

            let show = try await run(["context", "show", "-o", "json"], in: elsewhere, environment: environment)
            let settings = try json(show)
            func entry(_ name: String) -> (value: String?, source: String?) {
                let field = settings[name] as? [String: Any]
                return (field?["value"] as? String, field?["source"] as? String)
            }
            #expect(entry("context").value == "lab" && entry("context").source == "config:lab")
            #expect(entry("coordinator").value == lab.control && entry("coordinator").source == "config:lab")
            #expect(entry("key").value == lab.keys + "/client.key" && entry("key").source == "config:lab")
            #expect(entry("dir").value == lab.directory + "/lab-output" && entry("dir").source == "config:lab")
            #expect(entry("config").value == file && entry("config").source == "default")

            // Precedence: flag > environment > file.
            let layered = try await run(
                ["context", "show", "-o", "json", "-d", "/flag/dir"], in: elsewhere,
                environment: Self.isolated(
                    lab.directory, ["SHOAL_DIR": "/env/dir", "SHOAL_COORDINATOR": "tcp://127.0.0.1:9"]))
            let layers = try json(layered)
            #expect((layers["dir"] as? [String: Any])?["value"] as? String == "/flag/dir")
            #expect((layers["dir"] as? [String: Any])?["source"] as? String == "flag")
            #expect((layers["coordinator"] as? [String: Any])?["value"] as? String == "tcp://127.0.0.1:9")
            #expect((layers["coordinator"] as? [String: Any])?["source"] as? String == "env:SHOAL_COORDINATOR")
            #expect((layers["key"] as? [String: Any])?["source"] as? String == "config:lab")
            let table = try await run(["context", "show", "--coordinator", "tcp://127.0.0.1:8"], environment: environment)
            #expect(
                table.standardOutput.split(separator: "\n").contains {
                    $0.hasPrefix("coordinator ") && $0.contains("tcp://127.0.0.1:8") && $0.hasSuffix(" flag")
                }, "\(describe(table))")

            // A second context; `use` switches, SHOAL_CONTEXT overrides, an empty one means none.
            let other = try await run(
                ["context", "set", "other", "--dir", "/srv/other", "--nodes", "3", "--environment", "production"],
                environment: environment)
            #expect(other.status == 0 && !other.standardOutput.contains("(current)"), "\(describe(other))")
            let listed = try await run(["context", "list"], environment: environment)
            #expect(listed.standardOutput.split(separator: "\n").contains { $0.hasPrefix("*") && $0.contains("lab") })
            let use = try await run(["context", "use", "other"], environment: environment)
            #expect(use.status == 0, "\(describe(use))")
            let current = try await run(["context", "show", "-o", "json"], environment: environment)
            #expect((try json(current)["dir"] as? [String: Any])?["source"] as? String == "config:other")
            let chosen = try await run(
                ["context", "show", "-o", "json"], environment: Self.isolated(lab.directory, ["SHOAL_CONTEXT": "lab"]))
            #expect((try json(chosen)["context"] as? [String: Any])?["source"] as? String == "env:SHOAL_CONTEXT")
            #expect((try json(chosen)["coordinator"] as? [String: Any])?["value"] as? String == lab.control)
            let none = try await run(
                ["context", "show", "-o", "json"], environment: Self.isolated(lab.directory, ["SHOAL_CONTEXT": ""]))
            #expect((try json(none)["dir"] as? [String: Any])?["source"] as? String == "default")
            let names = try await run(["context", "list", "-o", "name"], environment: environment)
            #expect(names.standardOutput == "lab\nother\n")
            let completed = try await run(
                ["---completion", "context", "use", "--", "positional@0", "3", "1", "shoal", "context", "use", "o"],
                environment: environment)
            #expect(completed.standardOutput == "other\n", "context names complete: \(describe(completed))")
            let deleted = try await run(["context", "delete", "other"], environment: environment)
            #expect(deleted.status == 0, "\(describe(deleted))")
            let after = try String(contentsOfFile: file, encoding: .utf8)
            #expect(!after.contains("other") && !after.contains("currentContext"), "\(after)")
            let missing = try await run(["context", "use", "other"], environment: environment)
            #expect(missing.status == 1 && missing.standardError.contains("no context 'other'"))
        }

        @Test func aContextsDirectoryAndCreateDefaultsApplyToAnEmbeddedRunAndFlagsWin() async throws {
            let directory = Shoal.temporaryDirectory()
            let environment = Self.isolated(directory)
            let set = try await run(
                ["context", "set", "local", "-d", directory + "/runs", "--nodes", "2", "--environment", "staging",
                 "--insecure"],
                environment: environment)
            #expect(set.status == 0, "\(describe(set))")
            let elsewhere = Shoal.temporaryDirectory()
            let created = try await run(["create"], in: elsewhere, environment: environment)
            #expect(created.status == 0, "\(describe(created))")
            #expect(!created.standardError.contains("--insecure"), "the context's insecure is not the embedded mode's")
            let overridden = try await run(["create", "-n", "1"], in: elsewhere, environment: environment)
            #expect(overridden.status == 0, "\(describe(overridden))")
            #expect(!FileManager.default.fileExists(atPath: elsewhere + "/output"), "the context's directory is used")
            let list = try await run(["list", "-o", "json"], in: Shoal.temporaryDirectory(), environment: environment)
            let items = try #require(try json(list)["items"] as? [[String: Any]], "\(describe(list))")
            let requests = items.compactMap { $0["request"] as? [String: Any] }
            #expect(requests.map { $0["nodes"] as? Int } == [2, 1], "\(requests)")
            #expect(requests.allSatisfy { $0["environment"] as? String == "staging" })
        }

        @Test func aConfigFileWithRelativeKeysResolvesThemAgainstItsOwnDirectory() async throws {
            let lab = try RemoteLab()
            defer { lab.stopAll() }
            let environment = Self.isolated(lab.directory)
            let config = lab.directory + "/lab.yaml"
            try SecureFile.write(
                """
                apiVersion: shoal/v1
                kind: Config
                currentContext: lab
                contexts:
                  lab:
                    coordinator: \(lab.control)
                    key: keys/client.key
                    coordinatorKey: keys/coordinator.pub
                """, to: config, mode: 0o600)
            let elsewhere = Shoal.temporaryDirectory()
            let flag = try await run(["list", "--config", config], in: elsewhere, environment: environment)
            #expect(flag.status == 0, "\(describe(flag))")
            let variable = try await run(
                ["stats", "-o", "json"], in: elsewhere, environment: Self.isolated(lab.directory, ["SHOAL_CONFIG": config]))
            #expect(variable.status == 0, "\(describe(variable))")
            let show = try await run(["context", "show", "--config", config, "-o", "json"], environment: environment)
            let document = try json(show)
            #expect((document["config"] as? [String: Any])?["source"] as? String == "flag")
            #expect((document["key"] as? [String: Any])?["value"] as? String == lab.directory + "/keys/client.key")
        }

        @Test func aMalformedConfigFileIsOneLineNamingTheFileAndLine() async throws {
            let directory = Shoal.temporaryDirectory()
            let environment = Self.isolated(directory)
            let file = directory + "/config-home/shoal/config.yaml"
            for (text, line, message) in [
                ("contexts:\n  lab:\n    coordinator: tcp://x:1\n    nodes: 3\n", 4, "unknown key 'nodes'"),
                ("contexts:\n  lab: [\n", 3, "not valid YAML"),
                ("currentContext: nope\ncontexts: {}\n", 1, "currentContext 'nope' is not one of the contexts"),
                ("contexts:\n  lab:\n    coordinator: http://x\n", 3, "coordinator must be an endpoint"),
                ("contexts:\n  lab:\n    create:\n      nodes: 300\n", 4, "nodes must be a number from 1 to 99"),
                ("contexts:\n  lab:\n    insecure: maybe\n", 3, "insecure must be true or false"),
                ("- a\n- b\n", 1, "the file must be a mapping"),
            ] {
                try SecureFile.write(text, to: file, mode: 0o600)
                for arguments in [["status", "k3s-dev-000001"], ["context", "list"], ["context", "set", "lab", "-d", "x"]] {
                    let result = try await run(arguments, environment: environment)
                    #expect(result.status == 78, "\(arguments) with \(text): \(describe(result))")
                    #expect(result.standardError.hasPrefix("error: \(file):\(line): "), "\(result.standardError)")
                    #expect(result.standardError.contains(message), "\(result.standardError)")
                    #expect(result.standardError.split(separator: "\n").count == 1, "\(result.standardError)")
                    #expect(!result.standardError.contains("Fatal error"))
                }
                #expect(try String(contentsOfFile: file, encoding: .utf8) == text, "a bad file is never rewritten")
            }
            // Hostile files: never a trap, always the one-line EX_CONFIG answer.
            var hostile: [Data] = [
                Data((0..<4096).map { UInt8(truncatingIfNeeded: $0 &* 7919 &+ 13) }),
                Data((String(repeating: "[", count: 20_000)).utf8),
                Data("a: &x [*x, *x]\ncontexts: *x\n".utf8),
                Data(("contexts:\n  lab:\n    coordinator: tcp://" + String(repeating: "h", count: 1 << 20) + "\n").utf8),
                Data("contexts:\n  lab:\n    dir: \"a\\nb\"\n".utf8),
                Data("contexts:\n  'bad name':\n    dir: x\n".utf8),
                Data([0xFF, 0xFE, 0x00, 0x41]),
            ]
            hostile.append(Data("currentContext: [1, 2]\n".utf8))
            for data in hostile {
                try SecureFile.write(data, to: file, mode: 0o600)
                let result = try await run(["list"], environment: environment)
                #expect(result.status == 78 && !result.terminatedBySignal, "\(describe(result))")
                #expect(result.standardError.hasPrefix("error: \(file)"), "\(result.standardError.prefix(300))")
                #expect(result.standardError.split(separator: "\n").count == 1, "\(result.standardError.prefix(300))")
            }
            try FileManager.default.removeItem(atPath: file)
            let unknown = try await run(["list"], environment: Self.isolated(directory, ["SHOAL_CONTEXT": "zz"]))
            #expect(unknown.status == 78 && unknown.standardError.contains("SHOAL_CONTEXT names 'zz'"))
            #expect(try await run(["version"], environment: Self.isolated(directory, ["SHOAL_CONTEXT": "zz"])).status == 0)
        }
    }
}
