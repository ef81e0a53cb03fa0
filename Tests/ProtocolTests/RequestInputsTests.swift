import Testing

@testable import Protocol

@Suite struct RequestInputsTests {
    @Test(arguments: [
        "a;rm -rf /", "u@h;reboot", "-oProxyCommand=x@h", "u@h $(id)", "u@h\nx", "u@@h", "noat", "u@h`id`",
    ])
    func hostileHostsAreRefused(host: String) {
        var request = WorkflowRequest()
        request.nodes = 2
        request.hosts = [host]
        let problems = request.problems()
        #expect(problems.count == 1)
        #expect(problems.first?.hasPrefix("invalid host") == true)
        #expect(problems.first?.contains("\n") == false, "a hostile value cannot add lines")
    }

    @Test(arguments: ["ubuntu@10.0.0.5", "admin@node1.lan:2222", "root@[fe80::1]:22", "k3s_user@a-b.example"])
    func ordinaryHostsPass(host: String) {
        var request = WorkflowRequest()
        request.hosts = [host]
        #expect(request.inputProblems().isEmpty)
    }

    @Test func namesVersionsAndPathsAreChecked() {
        var request = WorkflowRequest()
        request.clusterName = "../etc"
        request.k3sVersion = "v1.36.3+k3s1"
        request.argocdVersion = "v3;ls"
        request.sshKeyPath = "/home/u/../../etc/shadow"
        request.airgapDirectory = "relative/dir"
        let problems = request.inputProblems()
        #expect(problems.count == 4)
        #expect(problems.contains { $0.hasPrefix("invalid cluster name '../etc'") })
        #expect(problems.contains { $0.hasPrefix("invalid --argocd-version") })
        #expect(problems.contains { $0.hasPrefix("invalid --ssh-key") })
        #expect(problems.contains { $0.hasPrefix("invalid --airgap-dir") })
        request.clusterName = "lab-1"
        request.argocdVersion = "v3.5.1"
        request.sshKeyPath = "/home/u/.ssh/id_ed25519"
        request.airgapDirectory = "/srv/k3s-airgap"
        #expect(request.inputProblems().isEmpty)
    }
}
