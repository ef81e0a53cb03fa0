// Everything of ShoalCore is part of ShoalSupport for the modules that use the latter.
@_exported import ShoalCore
