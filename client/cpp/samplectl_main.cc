// samplectl: the command-line client of sampled (see README.md or `samplectl --help`).
#include <iostream>
#include <string>
#include <vector>

#include "client/cpp/cli.h"

int main(int argc, char** argv) {
  return sampled::client::RunSamplectl(std::vector<std::string>(argv + 1, argv + argc), std::cout, std::cerr);
}
