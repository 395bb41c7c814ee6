#include "cli/cli.h"

int main(int argc, char** argv) { return nodata::cli::Main(argc, argv); }
