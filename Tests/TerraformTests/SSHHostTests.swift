import ShoalSupport
import Testing

@testable import Terraform

@Suite struct SSHHostTests {
    @Test(arguments: [
        ("ubuntu@10.0.0.5", SSHHost(user: "ubuntu", host: "10.0.0.5", port: 22)),
        ("admin@node1.lan:2222", SSHHost(user: "admin", host: "node1.lan", port: 2222)),
        ("root@k3s-1", SSHHost(user: "root", host: "k3s-1", port: 22)),
        ("_svc.k3s@Node-A.example.com", SSHHost(user: "_svc.k3s", host: "Node-A.example.com", port: 22)),
        ("ops@[2001:db8::7]:2200", SSHHost(user: "ops", host: "2001:db8::7", port: 2200)),
        ("ops@[::1]", SSHHost(user: "ops", host: "::1", port: 22)),
        ("ops@2001:db8::7", SSHHost(user: "ops", host: "2001:db8::7", port: 22)),
    ])
    func parsesValidDestinations(text: String, expected: SSHHost) throws {
        #expect(try SSHHost.parse(text) == expected)
    }

    @Test(arguments: [
        "a;rm -rf /",
        "root@a;rm -rf /",
        "root@host;reboot",
        "root@$(reboot)",
        "root@`id`",
        "-oProxyCommand=sh@host",
        "root@-oProxyCommand=sh",
        "ro ot@host",
        "root@host name",
        "root@host\nroot@evil",
        "root@host:0",
        "root@host:65536",
        "root@host:22x",
        "root@host:",
        "@host",
        "root@",
        "root@@host",
        "root@256.1.1.1",
        "root@1.2.3",
        "root@-host",
        "root@host-",
        "root@a..b",
        "root@[::1",
        "root@[fe80::1%eth0]",
        "root@[10.0.0.1]",
        "thisusernameiswaytoolongforposix1@host",
        "../x@host",
        "",
    ])
    func refusesHostileOrMalformedDestinations(text: String) {
        #expect {
            try SSHHost.parse(text)
        } throws: { error in
            guard let error = error as? ShoalError, error.code == .invalidInput else { return false }
            return error.message.hasPrefix("invalid SSH host '") && !error.message.contains("\n")
        }
    }

    @Test func refusalOfShellMetacharactersSaysWhatIsExpected() throws {
        let error = try #require(throws: ShoalError.self) { try SSHHost.parse("a;rm -rf /") }
        #expect(error.code == .invalidInput)
        #expect(error.message.contains("'a;rm -rf /'"))
        #expect(error.message.contains("USER@HOST"))
    }

    @Test func refusalNamesTheFieldAtFault() throws {
        let user = try #require(throws: ShoalError.self) { try SSHHost.parse("bad*user@host") }
        #expect(user.message.contains("not a POSIX user name"))
        let host = try #require(throws: ShoalError.self) { try SSHHost.parse("root@ho$t") }
        #expect(host.message.contains("neither an RFC 1123 host name"))
        let port = try #require(throws: ShoalError.self) { try SSHHost.parse("root@host:99999") }
        #expect(port.message.contains("1-65535"))
    }

    @Test func describesIPv6WithBrackets() {
        #expect(SSHHost(user: "a", host: "2001:db8::1", port: 22).description == "a@[2001:db8::1]:22")
        #expect(SSHHost(user: "a", host: "n1", port: 2222).description == "a@n1:2222")
    }
}
