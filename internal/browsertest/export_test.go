package browsertest

// TrustCA is trustCA for the package's external tests.
var TrustCA = trustCA
