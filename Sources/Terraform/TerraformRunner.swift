import Foundation
public import ShoalSupport

/// What `terraform plan` says it will do.
public struct TerraformPlanSummary: Sendable, Equatable {
    public var add: Int
    public var change: Int
    public var destroy: Int
    /// Addresses of the resources the plan touches, in the order terraform prints them.
    public var resources: [String]

    public init(add: Int, change: Int, destroy: Int, resources: [String]) {
        self.add = add
        self.change = change
        self.destroy = destroy
        self.resources = resources
    }

    /// Reads the output of `terraform plan -no-color`: the `Plan: N to add, N to change, N to destroy.`
    /// line (or `No changes.`) and the `# <address> will be created` headings.
    /// - Returns: nil when the output holds neither, e.g. after an error.
    public static func parse(_ output: String) -> TerraformPlanSummary? {
        var resources: [String] = []
        var counts: (add: Int, change: Int, destroy: Int)?
        for rawLine in output.split(separator: "\n", omittingEmptySubsequences: true) {
            let line = rawLine.trimmingCharacters(in: .whitespaces)
            if line.hasPrefix("# ") {
                let words = line.dropFirst(2).split(separator: " ")
                if words.count >= 3, words[1] == "will" || words[1] == "must" {
                    resources.append(String(words[0]))
                }
            } else if line.hasPrefix("Plan: ") {
                counts = (number(before: " to add", in: line), number(before: " to change", in: line),
                    number(before: " to destroy", in: line))
            } else if line.hasPrefix("No changes.") {
                counts = (0, 0, 0)
            }
        }
        guard let counts else { return nil }
        return TerraformPlanSummary(
            add: counts.add, change: counts.change, destroy: counts.destroy, resources: resources)
    }

    /// The integer just before `marker` in `line`, or 0 when the marker is absent.
    private static func number(before marker: String, in line: String) -> Int {
        guard let range = line.range(of: marker) else { return 0 }
        let digits = line[..<range.lowerBound].reversed().prefix { $0.isNumber }
        return Int(String(digits.reversed())) ?? 0
    }
}

/// Runs the terraform CLI in a directory written by `TerraformRenderer`.
///
/// Every command runs non-interactively (`-input=false`, `TF_IN_AUTOMATION`, no version check
/// over the network). The join token reaches terraform only as `TF_VAR_k3s_token` in the
/// environment of `plan`, `apply` and `destroy`: the variable is ephemeral, so terraform keeps it
/// out of the state and the saved plan. A non-zero exit of terraform is returned as data.
public struct TerraformRunner: Sendable {
    public var processRunner: ProcessRunner
    public var executable: String
    /// Limit for `apply` and `destroy`, which install or remove K3s on every node.
    public var applyTimeout: Duration
    /// Limit for `init`, `validate`, `fmt` and `plan`.
    public var commandTimeout: Duration

    /// Name of the plan file `plan` writes and `apply` uses.
    public static let planFile = "tfplan"
    /// Environment variable that carries the join token.
    public static let tokenVariable = "TF_VAR_k3s_token"

    public init(
        processRunner: ProcessRunner = ProcessRunner(),
        executable: String = "terraform",
        applyTimeout: Duration = .seconds(3600),
        commandTimeout: Duration = .seconds(300)
    ) {
        self.processRunner = processRunner
        self.executable = executable
        self.applyTimeout = applyTimeout
        self.commandTimeout = commandTimeout
    }

    /// Whether `executable` is on PATH (or, for a path, is executable).
    public static func isInstalled(executable: String = "terraform") -> Bool {
        ProcessRunner.locate(executable) != nil
    }

    /// A fresh K3s join token: 64 characters of `[A-Za-z0-9]` (about 381 bits) from the system's
    /// cryptographic random source.
    public static func generateToken() -> String {
        let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789")
        var generator = SystemRandomNumberGenerator()
        return String((0..<64).map { _ in alphabet.randomElement(using: &generator)! })
    }

    /// `terraform init -backend=false -input=false -no-color`: nothing to download.
    /// - Throws: `ShoalError(.executableNotFound)` or `.launchFailed`.
    public func initialize(directory: String) async throws -> ProcessResult {
        try await terraform(["init", "-backend=false", "-input=false", "-no-color"], in: directory)
    }

    /// `terraform validate -no-color`.
    /// - Throws: `ShoalError(.executableNotFound)` or `.launchFailed`.
    public func validate(directory: String) async throws -> ProcessResult {
        try await terraform(["validate", "-no-color"], in: directory)
    }

    /// `terraform fmt -check -diff -no-color`: exits non-zero when a file is not canonically formatted.
    /// - Throws: `ShoalError(.executableNotFound)` or `.launchFailed`.
    public func fmtCheck(directory: String) async throws -> ProcessResult {
        try await terraform(["fmt", "-check", "-diff", "-no-color"], in: directory)
    }

    /// `terraform plan -input=false -no-color -out=tfplan`, with the token in the environment.
    /// - Returns: the result, and the parsed summary when the plan succeeded (a failed plan can
    ///   still print a partial one, which is not returned).
    /// - Throws: `ShoalError(.invalidInput)` for a malformed token, or the launch errors.
    public func plan(directory: String, token: String) async throws -> (ProcessResult, TerraformPlanSummary?) {
        let result = try await terraform(
            ["plan", "-input=false", "-no-color", "-out=\(TerraformRunner.planFile)"], in: directory,
            token: token)
        return (result, result.succeeded ? TerraformPlanSummary.parse(result.standardOutput) : nil)
    }

    /// Applies the saved plan when `plan` left one, else plans and applies in one go
    /// (`-auto-approve`). The token must be the one the plan was made with.
    /// - Throws: `ShoalError(.invalidInput)` for a malformed token, or the launch errors.
    public func apply(directory: String, token: String) async throws -> ProcessResult {
        var arguments = ["apply", "-input=false", "-no-color", "-auto-approve"]
        if FileManager.default.fileExists(atPath: "\(directory)/\(TerraformRunner.planFile)") {
            arguments.append(TerraformRunner.planFile)
        }
        return try await terraform(arguments, in: directory, token: token, long: true)
    }

    /// `terraform destroy -input=false -no-color -auto-approve`: runs the uninstall provisioners
    /// and removes the kubeconfig.
    /// - Throws: `ShoalError(.invalidInput)` for a malformed token, or the launch errors.
    public func destroy(directory: String, token: String) async throws -> ProcessResult {
        try await terraform(
            ["destroy", "-input=false", "-no-color", "-auto-approve"], in: directory, token: token, long: true)
    }

    /// Whether `token` has the shape the configuration's validation accepts.
    public static func isValidToken(_ token: String) -> Bool {
        token.utf8.count >= 32 && token.utf8.allSatisfy { b in
            (b >= 48 && b <= 57) || (b >= 65 && b <= 90) || (b >= 97 && b <= 122)
        }
    }

    /// - Parameter long: apply and destroy, which install or remove K3s for minutes: `applyTimeout` and Go's
    ///   default collector. The other commands are short and bounded (`commandTimeout`, `GoRuntime`).
    private func terraform(
        _ arguments: [String], in directory: String, token: String? = nil, long: Bool = false
    ) async throws -> ProcessResult {
        var environment = [
            "TF_IN_AUTOMATION": "1",
            "TF_INPUT": "0",
            "CHECKPOINT_DISABLE": "1",
        ]
        if !long { environment.merge(GoRuntime.shortRunEnvironment()) { current, _ in current } }
        if let token {
            guard TerraformRunner.isValidToken(token) else {
                throw ShoalError(.invalidInput, "the K3s join token must be at least 32 letters and digits")
            }
            environment[TerraformRunner.tokenVariable] = token
        }
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: directory, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw ShoalError(.notFound, "the Terraform directory \(directory) does not exist")
        }
        return try await processRunner.run(
            executable, arguments, workingDirectory: directory, environment: environment,
            timeout: long ? applyTimeout : commandTimeout)
    }
}
