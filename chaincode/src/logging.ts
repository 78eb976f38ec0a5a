// fabric-contract-api logs every decorator at info level, on stdout, when the contract class
// loads: noise in the gateway's JSON logs and the CLI's output. Warnings and errors still show,
// and CORE_CHAINCODE_LOGGING_LEVEL set by an operator wins. Import this before the contract.
process.env.CORE_CHAINCODE_LOGGING_LEVEL ??= 'WARNING';
